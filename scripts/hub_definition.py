"""Writes the Meltano Hub plugin definition of target-s3 from `target-s3 --about`: the
file meltano/hub keeps as _data/meltano/loaders/target-s3/<variant>.yml, and what
`meltano add --from-ref` reads. A test keeps hub/target-s3.yml in step.

Usage: python scripts/hub_definition.py target/release/target-s3 > hub/target-s3.yml
"""

import json
import subprocess
import sys

# Set REPO to the repository's public address before publishing the definition.
VARIANT = "target-s3-rs"
REPO = "https://github.com/target-s3-rs/target-s3"

HEADER = f"""# Meltano Hub plugin definition of target-s3, generated from `target-s3 --about` by
# scripts/hub_definition.py (a test keeps it in step). Installs with pip from pip_url:
# the wheel holds the binary, built by maturin, so no `executable` path is needed.
name: target-s3
variant: {VARIANT}
namespace: target_s3
label: S3 (CSV, JSONL, Parquet)
description: {{description}}
repo: {REPO}
docs: {REPO}#readme
pip_url: git+{REPO}.git
executable: target-s3
domain_url: https://aws.amazon.com/s3/
keywords:
- aws
- s3
- file
- parquet
maintenance_status: active
settings_group_validation:
- - bucket
  - file_type
  - object_key_path"""


def label(name: str) -> str:
    words = name.replace("aws_", "AWS_").split("_")
    return " ".join(w if w.isupper() else w.capitalize() for w in words)


def kind(setting: dict) -> str:
    if setting.get("allowed_values"):
        return "options"
    return setting["type"]


def main() -> None:
    about = json.loads(subprocess.run([sys.argv[1], "--about"], capture_output=True, check=True).stdout)
    out = [HEADER.format(description=json.dumps(about["description"])), "capabilities:"]
    out += [f"- {c}" for c in about["capabilities"]]
    out.append("settings:")
    for s in about["settings"]:
        out.append(f"- name: {s['name']}")
        out.append(f"  label: {json.dumps(label(s['name']))}")
        out.append(f"  kind: {kind(s)}")
        if s["secret"]:
            out.append("  sensitive: true")
        if s.get("aliases"):
            out.append(f"  aliases: {json.dumps(s['aliases'])}")
        if s["default"] is not None:
            value = s["default"] if s["type"] in ("integer", "boolean") else json.dumps(s["default"])
            out.append(f"  value: {value}")
        for word in s.get("allowed_values") or []:
            if word == s["allowed_values"][0]:
                out.append("  options:")
            out.append(f"  - label: {json.dumps(word)}")
            out.append(f"    value: {json.dumps(word)}")
        out.append(f"  description: {json.dumps(s['description'])}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
