"""Mage's "Amazon S3" destination, handed over to target-s3.

Put this file in place of mage_integrations/destinations/amazon_s3/__init__.py (the
README's Mage section says how). Mage imports the module only to find this file's path,
then runs it as `python3 __init__.py <flags>`; run so, it replaces itself with target-s3
given the same flags. target-s3 is the TARGET_S3_BIN environment variable's path, else
the `target-s3` found on PATH.
"""

import json
import os
import shutil
import sys
import time


def main() -> None:
    binary = os.environ.get("TARGET_S3_BIN") or shutil.which("target-s3")
    if not binary:
        reason = "target-s3 not found: set TARGET_S3_BIN to its path or put it on PATH"
        line = json.dumps({"type": "LOG", "level": "ERROR", "message": reason,
                           "tags": {"error": reason}, "timestamp": time.time()})
        # Mage's runner reads stdout (a load); its connection test reads stderr.
        print(line, flush=True)
        print(f"ERROR {line}", file=sys.stderr, flush=True)
        sys.exit(127)
    os.execv(binary, [binary, *sys.argv[1:]])


if __name__ == "__main__":
    main()
