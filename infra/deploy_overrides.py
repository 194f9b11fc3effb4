"""Print the parameter overrides `make deploy` passes to `sam deploy`.

A `--parameter-overrides` on the command line replaces the list saved in
samconfig.toml whole, so this prints the saved overrides (default
environment, deploy section, else global) with `Architecture` set to the
architecture `make build` compiled for, as shell words for `eval set --`.
The binaries and the template's Architecture then always agree.

    python infra/deploy_overrides.py infra/samconfig.toml arm64
"""

import shlex
import sys


def load(path):
    try:
        import tomllib  # Python 3.11+

        with open(path, "rb") as f:
            return tomllib.load(f)
    except ModuleNotFoundError:
        import tomlkit  # a dependency of the SAM CLI, in its virtualenv

        with open(path, encoding="utf-8") as f:
            return tomlkit.parse(f.read()).unwrap()


def saved_overrides(config):
    env = config.get("default", {})
    for section in ("deploy", "global"):
        value = env.get(section, {}).get("parameters", {}).get("parameter_overrides")
        if value is not None:
            return value
    return []


def pairs(saved):
    """The saved overrides as (key, value): a list of "K=V" strings, one
    string of space-separated "K=V" (values may be quoted), or a table."""
    if isinstance(saved, dict):
        return [(str(k), str(v)) for k, v in saved.items()]
    words = shlex.split(saved) if isinstance(saved, str) else [str(w) for w in saved]
    return [tuple(w.split("=", 1)) for w in words if "=" in w]


def overrides(config, arch):
    kept = [(k, v) for k, v in pairs(saved_overrides(config)) if k != "Architecture"]
    # Each value double-quoted, as the SAM CLI parses a value with spaces.
    quoted = lambda v: '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return [f"{k}={quoted(v)}" for k, v in kept + [("Architecture", arch)]]


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("arm64", "x86_64"):
        sys.exit("usage: deploy_overrides.py SAMCONFIG arm64|x86_64")
    print(" ".join(shlex.quote(w) for w in overrides(load(sys.argv[1]), sys.argv[2])))


if __name__ == "__main__":
    main()
