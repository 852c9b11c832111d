"""Writes meltano.yml from `target-s3 --about`, so the loader declares every setting.

Usage: python scripts/meltano_yml.py target/release/target-s3 > meltano.yml
"""

import json
import subprocess
import sys

HEADER = """# Meltano project declaring target-s3 as a loader. Settings mirror `target-s3 --about`
# (a test keeps them in step; regenerate with scripts/meltano_yml.py).
# Build the binary with `cargo build --release` first.
version: 1
default_environment: dev
project_id: target-s3-example
environments:
- name: dev
plugins:
  loaders:
  - name: target-s3
    namespace: target_s3
    executable: ./target/release/target-s3
    capabilities:"""


def main() -> None:
    about = json.loads(subprocess.run([sys.argv[1], "--about"], capture_output=True, check=True).stdout)
    out = [HEADER]
    out += [f"    - {c}" for c in about["capabilities"]]
    out.append("    settings:")
    for s in about["settings"]:
        out.append(f"    - name: {s['name']}")
        out.append(f"      kind: {'password' if s['secret'] else s['type']}")
        if s.get("aliases"):
            out.append(f"      aliases: {json.dumps(s['aliases'])}")
        if s["default"] is not None:
            value = s["default"] if s["type"] in ("integer", "boolean") else json.dumps(s["default"])
            out.append(f"      value: {value}")
        out.append(f"      description: {json.dumps(s['description'])}")
    out += ["    config:", "      bucket: my-bucket", "      file_type: parquet", "      object_key_path: singer"]
    print("\n".join(out))


if __name__ == "__main__":
    main()
