"""Offline IAM policy lint: parliament over every policy of the SAM template
and the published operator policy.

    python infra/policy_lint.py infra/template.yaml docs/operator-policy.json

Every policy document of the template (role inline policies and trust
policies, managed policies, the bucket policy, the key policy) is rendered
the way CloudFormation would: `!Sub` with sample values for the pseudo
parameters, the parameters and the resources' attributes, `!If` taking the
branch that grants more (the one that is not AWS::NoValue, else the first),
`!Join`/`!Split`/`!Select` evaluated. The JSON policies' `${Placeholders}`
get the same sample values. Each policy then goes through parliament
(pinned in infra/requirements-parliament.txt; its IAM database ships in the
package, so nothing is fetched). A finding fails the lint unless SUPPRESSED
below names it with the reason it does not apply.
"""

import fnmatch
import json
import re
import sys
import warnings
from pathlib import Path

import yaml

# parliament imports pkg_resources, which warns on import.
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
import parliament  # noqa: E402

PARTITION, REGION, ACCOUNT, STACK = "aws", "us-east-1", "123456789012", "cwl-archiver"

# Values for parameters without a default (and ones worth linting with).
SAMPLE_PARAMETERS = {
    "LogGroupNamePattern": "/aws/lambda/*",
    "Encryption": "SSE-KMS",
    "GlacierLogGroups": "/aws/lambda/orders-api",
}

# What `Ref` and `Fn::GetAtt` of a resource give, by resource type.
def resource_value(logical, kind, attribute):
    arn = f"arn:{PARTITION}"
    if kind == "AWS::S3::Bucket":
        return f"{arn}:s3:::{STACK}-archive" if attribute == "Arn" else f"{STACK}-archive"
    if kind == "AWS::KMS::Key":
        return f"{arn}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    if kind == "AWS::Logs::LogGroup":
        return f"{arn}:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{STACK}-{logical}:*"
    if kind == "AWS::Serverless::Function":
        return f"{arn}:lambda:{REGION}:{ACCOUNT}:function:{STACK}-{logical}"
    if kind == "AWS::Serverless::StateMachine":
        return f"{arn}:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-{logical}"
    if kind == "AWS::IAM::Role":
        return f"{arn}:iam::{ACCOUNT}:role/{STACK}-{logical}"
    return f"{STACK}-{logical}"


# Findings that do not apply, each with the reason: (policy glob, parliament
# issue, test of the finding's detail, reason). Policies are named as in the
# output, Resource/PolicyName.
def _only_formats(*allowed):
    """A RESOURCE_MISMATCH whose every item is one of (action, required format)."""
    return lambda detail: isinstance(detail, list) and all(
        (item.get("action"), item.get("required_format")) in allowed for item in detail
    )


SUPPRESSED = [
    (
        "ArchiveKey/KeyPolicy",
        "RESOURCE_STAR",
        lambda detail: True,
        'in a key policy "Resource": "*" means the key the policy is attached to',
    ),
    (
        "ArchiveKey/KeyPolicy",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        lambda detail: True,
        "the account administers its own key (kms:PutKeyPolicy, grants): the key policy delegates to IAM"
        " so the key never becomes unmanageable",
    ),
    (
        "*StateMachineRole/*",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        lambda detail: True,
        "logs:PutResourcePolicy is what Step Functions' log delivery to CloudWatch Logs needs (AWS"
        " documents it for state machine logging; it supports no resource-level permissions)",
    ),
    (
        "*/AssumeRolePolicyDocument",
        "MALFORMED",
        lambda detail: "neither Resource nor NotResource" in str(detail),
        "a trust policy names a principal and sts:AssumeRole, never a Resource",
    ),
    (
        "*",
        "RESOURCE_MISMATCH",
        _only_formats(("states:DescribeExecution", "arn:*:states:*:*:express:*:*:*")),
        "the IAM reference lists two resource types for DescribeExecution, execution and express, and a"
        " request names one; these state machines are STANDARD, so only execution ARNs exist (AWS's"
        " Distributed Map policy example grants it on execution ARNs alone)",
    ),
    (
        "*",
        "RESOURCE_MISMATCH",
        _only_formats(("states:ListExecutions", "arn:*:states:*:*:mapRun:*/*:*")),
        "ListExecutions takes a state machine or a Map Run ARN, one per request; the CLI lists a state"
        " machine's executions",
    ),
]


class Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics as their long form."""


def _construct(tag):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if tag == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        name = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"
        return {name: value}

    return construct


for _tag in ("Ref", "Condition", "GetAtt", "Sub", "If", "Join", "Split", "Select",
             "Equals", "Not", "And", "Or", "FindInMap", "Base64", "GetAZs"):
    Loader.add_constructor(f"!{_tag}", _construct(_tag))


class Renderer:
    def __init__(self, template):
        self.template = template
        self.resources = template.get("Resources", {})
        self.parameters = {
            name: str(p["Default"]) for name, p in template.get("Parameters", {}).items() if "Default" in p
        }
        self.parameters.update(SAMPLE_PARAMETERS)

    def name(self, name):
        pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": STACK,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        # The placeholders of docs/operator-policy.json.
        documented = {
            "Region": REGION,
            "AccountId": ACCOUNT,
            "StackName": STACK,
            "ArchiveBucketName": "ArchiveBucket",
            "ArchiveKeyArn": "ArchiveKey.Arn",
        }
        if name in documented:
            value = documented[name]
            return self.name(value) if value[0].isupper() else value
        if name in self.parameters:
            return self.parameters[name]
        logical, _, attribute = name.partition(".")
        if logical in self.resources:
            return resource_value(logical, self.resources[logical]["Type"], attribute)
        raise KeyError(f"nothing resolves {name}")

    def sub(self, text, variables):
        def replace(match):
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(self.render(variables[inner]))
            return self.name(inner)

        return re.sub(r"\$\{([^}]*)\}", replace, text)

    def render(self, value):
        """The value with its intrinsics evaluated; None for AWS::NoValue."""
        if isinstance(value, list):
            return [v for v in (self.render(item) for item in value) if v is not None]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, args), = value.items()
            if key == "Ref":
                return None if args == "AWS::NoValue" else self.name(args)
            if key == "Fn::GetAtt":
                return self.name(".".join(args))
            if key == "Fn::Sub":
                if isinstance(args, str):
                    return self.sub(args, {})
                return self.sub(args[0], args[1] if len(args) > 1 else {})
            if key == "Fn::If":
                _, yes, no = args
                chosen = self.render(yes)
                return chosen if chosen is not None else self.render(no)
            if key == "Fn::Join":
                return args[0].join(str(v) for v in self.render(args[1]))
            if key == "Fn::Split":
                return str(self.render(args[1])).split(args[0])
            if key == "Fn::Select":
                return self.render(args[1])[int(args[0])]
        out = {}
        for k, v in value.items():
            rendered = self.render(v)
            if rendered is not None:
                out[k] = rendered
        return out


def template_policies(path):
    with open(path, encoding="utf-8") as f:
        template = yaml.load(f, Loader=Loader)
    renderer = Renderer(template)
    found = []
    for logical, resource in template.get("Resources", {}).items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::IAM::Role":
            found.append((f"{logical}/AssumeRolePolicyDocument", props["AssumeRolePolicyDocument"]))
            for policy in props.get("Policies", []):
                found.append((f"{logical}/{policy['PolicyName']}", policy["PolicyDocument"]))
        elif kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::S3::BucketPolicy"):
            found.append((f"{logical}/PolicyDocument", props["PolicyDocument"]))
        elif kind == "AWS::KMS::Key":
            found.append((f"{logical}/KeyPolicy", props["KeyPolicy"]))
        elif kind == "AWS::Serverless::Function" and "Policies" in props:
            sys.exit(f"{logical}: SAM policy templates are not linted; write an AWS::IAM::Role")
    return [(label, renderer.render(doc)) for label, doc in found], renderer


def json_policy(path, renderer):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return (path, json.loads(renderer.sub(text, {})))


def suppressed(label, finding):
    for policy, issue, applies, reason in SUPPRESSED:
        if fnmatch.fnmatchcase(label, policy) and issue == finding.issue and applies(finding.detail):
            return reason
    return None


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: policy_lint.py TEMPLATE [POLICY.json ...]")
    # The community auditors (privilege escalation, permissions management,
    # credentials exposure, sensitive access, ...) come with their settings.
    community = Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"
    parliament.override_config(str(community))
    policies, renderer = template_policies(argv[1])
    policies += [json_policy(path, renderer) for path in argv[2:]]
    failures, quiet = 0, 0
    for label, document in policies:
        policy = parliament.analyze_policy_string(
            json.dumps(document, indent=1), include_community_auditors=True
        )
        for finding in policy.findings:
            parliament.enhance_finding(finding)
            reason = suppressed(label, finding)
            if reason:
                quiet += 1
                print(f"suppressed {label}: {finding.issue}: {reason}")
                continue
            failures += 1
            print(f"{label}: {finding.severity} {finding.issue}: {finding.title}\n    {finding.detail}")
    print(f"parliament {parliament.__version__}: {len(policies)} policies, "
          f"{failures} finding(s), {quiet} suppressed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
