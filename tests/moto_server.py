"""moto's server, with two S3 Tables answers fixed for the AWS SDKs' strict parsing.

PATCHED MOTO, on purpose and only here: moto's S3 Tables answers two fields with types
the S3 Tables API does not have, which the AWS SDK for Rust (target-s3's client)
refuses to parse, so every such request would fail:
- GetTable's `managedByService` is a bool (the API's is a string, absent for the
  customer's own tables): dropped when false;
- UpdateTableMetadataLocation's `namespace` is a string (the API's is a list of one
  name): sent as a list.
Everything else is moto's own. Run as `python moto_server.py <moto_server's flags>`.
"""

from __future__ import annotations

import json
import sys

from moto.s3tables.responses import S3TablesResponse
from moto.server import main


def fixed(answer: str, fix) -> str:
    body = json.loads(answer)
    fix(body)
    return json.dumps(body)


def drop_false_managed_by(body: dict) -> None:
    if body.get("managedByService") in (False, None):
        body.pop("managedByService", None)


def namespace_as_list(body: dict) -> None:
    if isinstance(body.get("namespace"), str):
        body["namespace"] = [body["namespace"]]


def patch(method: str, fix) -> None:
    original = getattr(S3TablesResponse, method)

    def answer(self):
        status, headers, body = original(self)
        return status, headers, fixed(body, fix) if status == 200 else body

    setattr(S3TablesResponse, method, answer)


patch("get_table", drop_false_managed_by)
patch("update_table_metadata_location", namespace_as_list)

if __name__ == "__main__":
    sys.exit(main())
