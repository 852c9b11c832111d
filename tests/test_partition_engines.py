"""Partitioned streams read back by the query engines users point at the folders: DuckDB,
polars, DataFusion and pyarrow datasets, each with Hive partitioning on. Every engine opens
the folder, the file columns keep their own values (no folder is named as a column), and
the partition columns hold the folder values as each engine's Hive type inference reads
them (integers, dates, strings with `=`, `/`, `%`, nulls)."""

import datetime as dt
import json

import datafusion
import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from harness import run_target

PROPS = {
    "id": {"type": "integer"},
    "created_at": {"type": "string", "format": "date-time"},
    "country": {"type": ["string", "null"]},
    "code": {"type": "string"},
    "shop": {"type": ["integer", "null"]},
    "day": {"type": ["string", "null"], "format": "date"},
    "paid": {"type": "boolean"},
}
COUNTRIES = ["FR", "a=b/c%d é", None, ""]
RECORDS = [
    {"id": n, "created_at": f"2024-0{1 + n % 2}-1{n % 3}T0{n % 10}:30:00Z", "country": COUNTRIES[n % 4],
     "code": ["007", "12"][n % 2], "shop": [7, -3, None][n % 3], "day": [None, "2024-01-02", "1999-12-31"][n % 3],
     "paid": n % 2 == 0}
    for n in range(12)
]
PARTITION_BY = ["created_at:%Y-%m", "country", "code", "shop", "day", "paid"]
PARTS = ["created_at_month", "country_part", "code_part", "shop_part", "day_part", "paid_part"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The stream written once into a local folder, as a lake on disk."""
    lake = tmp_path_factory.mktemp("lake")
    lines = [json.dumps({"type": "SCHEMA", "stream": "orders", "key_properties": ["id"],
                         "schema": {"properties": PROPS}})]
    lines += [json.dumps({"type": "RECORD", "stream": "orders", "record": r}) for r in RECORDS]
    config = {"aws_endpoint": f"file://{lake}", "bucket": "lake", "file_type": "parquet",
              "object_key_path": "exports", "partition_by": PARTITION_BY}
    run = run_target(config, "\n".join(lines) + "\n")
    assert run.returncode == 0, run.stderr
    folder = lake / "lake" / "exports" / "orders"
    first = sorted(folder.rglob("*.parquet"))[0].relative_to(folder)
    assert [p.split("=")[0] for p in first.parts[:-1]] == PARTS
    return folder


def file_columns(rows):
    """The file's own columns as the records gave them."""
    return [{k: r[k] for k in PROPS} for r in rows]


def sent():
    out = []
    for r in RECORDS:
        out.append({**r, "created_at": dt.datetime.fromisoformat(r["created_at"]),
                    "day": r["day"] and dt.date.fromisoformat(r["day"])})
    return out


def parts(text=lambda v: v, integer=lambda v: v, date=lambda v: v, boolean=lambda v: v, null=None):
    """The partition columns expected of each record, through an engine's readings of
    the folder text by type; null and "" are the default partition."""
    out = []
    for r in sent():
        def either(value, read):
            return null if value in (None, "") else read(value)
        out.append({"created_at_month": r["created_at"].strftime("%Y-%m"), "country_part": either(r["country"], text),
                    "code_part": either(r["code"], text), "shop_part": either(r["shop"], integer),
                    "day_part": either(r["day"], date), "paid_part": either(r["paid"], boolean)})
    return out


def check(rows, expected_parts):
    rows = sorted(rows, key=lambda r: r["id"])
    assert [r["id"] for r in rows] == [r["id"] for r in RECORDS], "every row, once"
    assert file_columns(rows) == sent(), "the file's columns keep their values"
    assert [{k: r[k] for k in PARTS} for r in rows] == expected_parts


def test_duckdb_reads_every_column(root):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    table = con.sql(f"SELECT * FROM read_parquet('{root}/**/*.parquet')")  # hive_partitioning: its default
    kinds = dict(zip(table.columns, map(str, table.types)))
    assert kinds["created_at"] == "TIMESTAMP WITH TIME ZONE" and kinds["code"] == "VARCHAR"
    assert [kinds[p] for p in PARTS] == ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "DATE", "VARCHAR"]
    rows = [dict(zip(table.columns, row)) for row in table.fetchall()]
    # DuckDB keeps "007" as text; booleans come back as the text true/false.
    check(rows, parts(boolean=lambda b: str(b).lower()))


def test_polars_reads_every_column(root):
    frame = pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True).collect()
    assert frame.schema["shop_part"] == pl.Int64 and frame.schema["day_part"] == pl.Date
    # polars infers the digits of a string as an integer: "007" reads 7 unless the folder
    # types are given (hive_schema, which must name every folder).
    check(frame.to_dicts(), parts(text=lambda s: int(s) if s.isdigit() else s))
    typed = pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True,
                            hive_schema={"created_at_month": pl.String, "country_part": pl.String,
                                         "code_part": pl.String, "shop_part": pl.Int64, "day_part": pl.Date,
                                         "paid_part": pl.Boolean}).collect()
    check(typed.to_dicts(), parts())


def test_datafusion_reads_every_column(root):
    ctx = datafusion.SessionContext()
    ctx.sql(f"CREATE EXTERNAL TABLE orders STORED AS PARQUET LOCATION '{root}/'").collect()
    table = ctx.sql("SELECT * FROM orders").to_arrow_table()
    # DataFusion reads every folder as text and shows the default partition as its name.
    check(table.to_pylist(), parts(text=str, integer=str, date=str, boolean=lambda b: str(b).lower(),
                                   null="__HIVE_DEFAULT_PARTITION__"))


def test_pyarrow_dataset_reads_every_column(root):
    inferred = ds.dataset(str(root), format="parquet", partitioning="hive").to_table()
    assert inferred.schema.field("shop_part").type == pa.int32()
    check(inferred.to_pylist(), parts(text=lambda s: int(s) if s.isdigit() else s, date=str,
                                      boolean=lambda b: str(b).lower()))
    partitioning = ds.partitioning(pa.schema([
        ("created_at_month", pa.string()), ("country_part", pa.string()), ("code_part", pa.string()),
        ("shop_part", pa.int64()), ("day_part", pa.date32()), ("paid_part", pa.bool_())]), flavor="hive")
    typed = ds.dataset(str(root), format="parquet", partitioning=partitioning).to_table()
    check(typed.to_pylist(), parts())
