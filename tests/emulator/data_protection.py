"""CloudWatch Logs data protection: policies and masking (moto 5.2.5 has none).

AWS ("Help protect sensitive log data with masking", PutDataProtectionPolicy):
sensitive data is detected and masked when it is INGESTED; events ingested
before the policy was set are never masked; masked text is what every egress
point shows unless the caller reads with `unmask=true` (and `logs:Unmask`).
A log group's own policy and the account-level DATA_PROTECTION_POLICY apply
together.

The emulator keeps every version of every policy with the time it was in
force, and decides at read time from the event's ingestion time: an event is
masked by the policy versions in force when it was ingested. So deleting or
replacing a policy never unmasks what was ingested under it (the strict
reading: AWS masks at ingestion).

Data identifiers are regular expressions: the managed `EmailAddress` and
`IpAddress` (IPv4) identifiers, and custom identifiers
(`Configuration.CustomDataIdentifier[{Name, Regex}]`). Any other managed
identifier is rejected as not emulated, so a test never believes it masks
what it does not. Each match becomes `*****` (AWS documents "replaced by
asterisks" without the exact form; the emulator uses five per match).

Validation follows the PutDataProtectionPolicy reference: one statement with
an `Audit` operation (with a `FindingsDestination` object) and one with a
`Deidentify` operation whose `MaskConfig` is `{}`, both with the same
`DataIdentifier` array; at most 30,720 characters; at most 10 custom
identifiers, names `[A-Za-z0-9_-]{1,128}`, regexes of at most 200 characters.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from moto.logs.exceptions import (
    InvalidParameterException,
    LimitExceededException,
    ResourceNotFoundException,
)

MASK = "*****"
MANAGED_PREFIX = "arn:aws:dataprotection::aws:data-identifier/"
MANAGED_IDENTIFIERS: dict[str, str] = {
    "EmailAddress": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "IpAddress": r"(?<![0-9.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?![0-9.])",
}
MAX_POLICY_CHARS = 30_720
MAX_CUSTOM = 10
CUSTOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

LOCK = threading.RLock()


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class PolicyVersion:
    document: str
    patterns: list[re.Pattern[str]]
    start_ms: int
    end_ms: int | None = None

    def in_force_at(self, ms: int) -> bool:
        return self.start_ms <= ms and (self.end_ms is None or ms < self.end_ms)


@dataclass
class AccountPolicy:
    name: str
    policy_type: str
    document: str
    scope: str
    selection_criteria: str | None
    updated_ms: int


@dataclass
class Store:
    # group name -> every version of its data protection policy, oldest first
    groups: dict[str, list[PolicyVersion]] = field(default_factory=dict)
    # versions of the account-level DATA_PROTECTION_POLICY
    account_versions: list[PolicyVersion] = field(default_factory=list)
    # every account policy by (type, name)
    account_policies: dict[tuple[str, str], AccountPolicy] = field(default_factory=dict)


STORES: dict[tuple[str, str], Store] = {}


def store(account: str, region: str) -> Store:
    with LOCK:
        return STORES.setdefault((account, region), Store())


def _invalid(msg: str) -> InvalidParameterException:
    return InvalidParameterException(msg)


def compile_policy(document: Any) -> list[re.Pattern[str]]:
    """Validates a data protection policy document; returns its identifiers' regexes."""
    if not isinstance(document, str) or not document:
        raise _invalid("policyDocument is required.")
    if len(document) > MAX_POLICY_CHARS:
        raise _invalid(f"policyDocument is longer than {MAX_POLICY_CHARS} characters.")
    try:
        doc = json.loads(document)
    except ValueError:
        raise _invalid("policyDocument is not valid JSON.")
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), list):
        raise _invalid("policyDocument must have a Statement array.")
    custom: dict[str, str] = {}
    config = doc.get("Configuration") or {}
    if not isinstance(config, dict):
        raise _invalid("Configuration must be an object.")
    cdis = config.get("CustomDataIdentifier") or []
    if not isinstance(cdis, list) or len(cdis) > MAX_CUSTOM:
        raise _invalid(f"At most {MAX_CUSTOM} custom data identifiers are supported.")
    for cdi in cdis:
        name = cdi.get("Name") if isinstance(cdi, dict) else None
        regex = cdi.get("Regex") if isinstance(cdi, dict) else None
        if not isinstance(name, str) or not CUSTOM_NAME.match(name):
            raise _invalid(f"Invalid custom data identifier name: {name!r}.")
        if name in MANAGED_IDENTIFIERS:
            raise _invalid(f"Custom data identifier {name} shares the name of a managed data identifier.")
        if not isinstance(regex, str) or not regex or len(regex) > 200:
            raise _invalid(f"Custom data identifier {name}: Regex must have 1 to 200 characters.")
        try:
            re.compile(regex)
        except re.error as exc:
            raise _invalid(f"Custom data identifier {name}: invalid Regex: {exc}.")
        custom[name] = regex

    audit: list[str] | None = None
    deidentify: list[str] | None = None
    for st in doc["Statement"]:
        if not isinstance(st, dict):
            raise _invalid("Each Statement must be an object.")
        ids = st.get("DataIdentifier")
        op = st.get("Operation")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise _invalid("Each Statement needs a non-empty DataIdentifier array.")
        if not isinstance(op, dict) or len(op) != 1:
            raise _invalid("Each Statement needs one Operation.")
        if "Audit" in op:
            if audit is not None:
                raise _invalid("A data protection policy can have only one Audit statement.")
            if not isinstance(op["Audit"], dict) or not isinstance(op["Audit"].get("FindingsDestination"), dict):
                raise _invalid("The Audit operation must contain a FindingsDestination object.")
            audit = ids
        elif "Deidentify" in op:
            if deidentify is not None:
                raise _invalid("A data protection policy can have only one Deidentify statement.")
            if op["Deidentify"] != {"MaskConfig": {}}:
                raise _invalid('The Deidentify operation must contain "MaskConfig": {} and nothing else.')
            deidentify = ids
        else:
            raise _invalid(f"Unsupported operation {sorted(op)}.")
    if audit is None or deidentify is None:
        raise _invalid("A data protection policy needs an Audit statement and a Deidentify statement.")
    if sorted(audit) != sorted(deidentify):
        raise _invalid("The DataIdentifier arrays of the Audit and Deidentify statements must match exactly.")

    patterns: list[re.Pattern[str]] = []
    for ident in deidentify:
        if ident.startswith(MANAGED_PREFIX):
            name = ident[len(MANAGED_PREFIX) :]
            if name not in MANAGED_IDENTIFIERS:
                raise _invalid(
                    f"Managed data identifier {name} is not emulated (the emulator implements "
                    f"{sorted(MANAGED_IDENTIFIERS)} and custom identifiers)."
                )
            patterns.append(re.compile(MANAGED_IDENTIFIERS[name]))
        elif ident in custom:
            patterns.append(re.compile(custom[ident]))
        else:
            raise _invalid(f"Unknown data identifier {ident}.")
    return patterns


def _end(versions: list[PolicyVersion], at: int) -> None:
    if versions and versions[-1].end_ms is None:
        versions[-1].end_ms = at


def put_group_policy(account: str, region: str, group: str, document: str) -> int:
    patterns = compile_policy(document)
    with LOCK:
        st = store(account, region)
        at = now_ms()
        versions = st.groups.setdefault(group, [])
        _end(versions, at)
        versions.append(PolicyVersion(document, patterns, at))
        return at


def get_group_policy(account: str, region: str, group: str) -> PolicyVersion | None:
    with LOCK:
        versions = store(account, region).groups.get(group) or []
        if versions and versions[-1].end_ms is None:
            return versions[-1]
        return None


def delete_group_policy(account: str, region: str, group: str, missing_ok: bool = False) -> None:
    with LOCK:
        versions = store(account, region).groups.get(group) or []
        if not versions or versions[-1].end_ms is not None:
            if missing_ok:
                return
            raise ResourceNotFoundException("The specified log group has no data protection policy.")
        _end(versions, now_ms())


def account_dp_active(account: str, region: str) -> bool:
    with LOCK:
        versions = store(account, region).account_versions
        return bool(versions) and versions[-1].end_ms is None


def put_account_policy(
    account: str,
    region: str,
    name: str,
    policy_type: str,
    document: str,
    scope: str | None,
    selection_criteria: str | None,
) -> AccountPolicy:
    if not name:
        raise _invalid("policyName is required.")
    if policy_type == "DATA_PROTECTION_POLICY":
        patterns = compile_policy(document)
    elif not document:
        raise _invalid("policyDocument is required.")
    with LOCK:
        st = store(account, region)
        if policy_type == "DATA_PROTECTION_POLICY":
            others = [k for k in st.account_policies if k[0] == policy_type and k[1] != name]
            if others:
                # One account-level data protection policy per account.
                raise LimitExceededException()
        at = now_ms()
        policy = AccountPolicy(name, policy_type, document, scope or "ALL", selection_criteria, at)
        st.account_policies[(policy_type, name)] = policy
        if policy_type == "DATA_PROTECTION_POLICY":
            _end(st.account_versions, at)
            st.account_versions.append(PolicyVersion(document, patterns, at))
        return policy


def describe_account_policies(account: str, region: str, policy_type: str, name: str | None) -> list[AccountPolicy]:
    with LOCK:
        st = store(account, region)
        return [
            p
            for (t, n), p in sorted(st.account_policies.items())
            if t == policy_type and (name is None or n == name)
        ]


def delete_account_policy(account: str, region: str, name: str, policy_type: str) -> None:
    with LOCK:
        st = store(account, region)
        if (policy_type, name) not in st.account_policies:
            raise ResourceNotFoundException("The specified account policy does not exist.")
        del st.account_policies[(policy_type, name)]
        if policy_type == "DATA_PROTECTION_POLICY":
            _end(st.account_versions, now_ms())


def masked(account: str, region: str, group: str, ingestion_ms: int, message: str) -> str | None:
    """The masked text of an event, or None if no policy in force at its ingestion masks it."""
    with LOCK:
        st = STORES.get((account, region))
        if st is None:
            return None
        patterns: list[re.Pattern[str]] = []
        for version in st.groups.get(group, ()):
            if version.in_force_at(ingestion_ms):
                patterns.extend(version.patterns)
        for version in st.account_versions:
            if version.in_force_at(ingestion_ms):
                patterns.extend(version.patterns)
    if not patterns:
        return None
    text = message
    for pattern in patterns:
        text = pattern.sub(MASK, text)
    return text if text != message else None


def account_policy_json(account: str, policy: AccountPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {
        "policyName": policy.name,
        "policyDocument": policy.document,
        "lastUpdatedTime": policy.updated_ms,
        "policyType": policy.policy_type,
        "scope": policy.scope,
        "accountId": account,
    }
    if policy.selection_criteria:
        out["selectionCriteria"] = policy.selection_criteria
    return out
