"""DuckDB's iceberg extension as a reader of the tables target-s3 writes.

The extension on the package index is built for an older DuckDB than the test venv's, and
an extension loads only into its own DuckDB version: so it lives in a venv of its own
(`.venv-duckdb-iceberg`, made by the Makefile), and this file is both the script run there
(`main`: one query in, rows out as JSON) and the tests' helper that runs it (`query`).
Only the standard library is imported at the top: the two venvs share nothing else. The
extensions (iceberg, avro which it needs, httpfs for s3:// paths) are loaded from their
pip packages' files, never downloaded: autoloading and autoinstalling are off.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv-duckdb-iceberg" / "bin" / "python"
# Load order matters: iceberg's initialisation looks for avro.
EXTENSIONS = ["httpfs", "avro", "iceberg"]


def query(sql: str, endpoint: str, key_id: str, secret: str) -> list[dict]:
    """Rows of `sql` (which may call iceberg_scan('s3://…metadata.json')) as DuckDB reads
    them, through the S3 server at `endpoint` (http://host:port, path-style)."""
    request = {"sql": sql, "endpoint": endpoint.removeprefix("http://"), "key_id": key_id,
               "secret": secret}
    done = subprocess.run([str(PYTHON), __file__], input=json.dumps(request),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout, object_hook=decode)


# Values JSON has no type for travel as {"<type>": text} and come back as that type.
TYPES = {"decimal": Decimal, "datetime": datetime.fromisoformat, "date": date.fromisoformat,
         "time": time.fromisoformat}


def encode(value) -> dict:
    for name, kind in (("decimal", Decimal), ("datetime", datetime), ("date", date), ("time", time)):
        if isinstance(value, kind):
            return {name: str(value) if kind is Decimal else value.isoformat()}
    raise TypeError(f"DuckDB returned a {type(value).__name__}: cast it to text in the query")


def decode(obj: dict):
    if len(obj) == 1:
        [(name, text)] = obj.items()
        if name in TYPES and isinstance(text, str):
            return TYPES[name](text)
    return obj


def connect():
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    for name in EXTENSIONS:
        package = __import__(f"duckdb_extension_{name}")
        [path] = Path(package.__file__).parent.glob(f"extensions/*/{name}.duckdb_extension")
        con.execute(f"LOAD '{path}'")
    con.execute("SET TimeZone = 'UTC'")
    return con


def literal(text: str) -> str:
    """A SQL string literal (CREATE SECRET takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def main() -> None:
    request = json.load(sys.stdin)
    con = connect()
    key_id, secret, endpoint = (literal(request[k]) for k in ("key_id", "secret", "endpoint"))
    con.execute(f"CREATE SECRET (TYPE s3, KEY_ID {key_id}, SECRET {secret}, ENDPOINT {endpoint}, "
                "URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')")
    result = con.sql(request["sql"])
    rows = [dict(zip(result.columns, row)) for row in result.fetchall()]
    # Python's types hold what they can exactly (ints, Decimal, datetime, -0.0); a test
    # casts the rest to text in its SQL.
    json.dump(rows, sys.stdout, default=encode)


if __name__ == "__main__":
    main()
