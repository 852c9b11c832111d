"""Iceberg tables read back by DuckDB's iceberg extension (a reader of its own: its own
metadata, manifest and Parquet readers), from the current metadata file over S3: the
edge values fixture through the REST catalog (SeaweedFS) and through Glue (moto), and a
partitioned table. Every value is compared with what was sent, exactly; DuckDB runs in
a venv of its own (tests/duckdb_iceberg.py says why)."""

from __future__ import annotations

import pytest

import duckdb_iceberg
from harness import ACCESS_KEY, EDGE, EDGE_RECORDS, EDGE_TEXT, SECRET_KEY, parse_json, run_target, sent_value
from test_iceberg import namespace
from test_iceberg_glue import catalog as glue_catalog
from test_iceberg_glue import database, glue_config
from test_iceberg_partition import SCHEMA as EVENTS_SCHEMA
from test_iceberg_partition import records as events
from test_iceberg_partition import singer as events_singer

pytest.importorskip("pyiceberg")

if not duckdb_iceberg.PYTHON.exists():
    pytest.skip(f"DUCKDB'S ICEBERG EXTENSION IS NOT INSTALLED at {duckdb_iceberg.PYTHON}: "
                "`make test` installs it", allow_module_level=True)

# The edge columns of no single type: JSON text, a `string` column in Iceberg.
JSON_COLUMNS = ("any", "mixed")
# What DuckDB makes of the Iceberg types target-s3 gives the edge columns.
EDGE_DUCKDB_TYPES = {
    "id": "BIGINT", "i": "BIGINT", "f": "DOUBLE", "big": "DECIMAL(38,0)", "dec": "DECIMAL(38,10)",
    "wide": "VARCHAR", "s": "VARCHAR", "b": "BOOLEAN", "ts": "TIMESTAMP WITH TIME ZONE", "d": "DATE",
    "t": "VARCHAR", "obj": "STRUCT(a BIGINT, b STRUCT(c VARCHAR, ts TIMESTAMP WITH TIME ZONE), l DOUBLE[])",
    "arr": "VARCHAR[]", "deep": "STRUCT(x BIGINT, y BOOLEAN[])[][]", "any": "VARCHAR", "mixed": "VARCHAR"}


def duckdb_rows(server, sql: str) -> list[dict]:
    return duckdb_iceberg.query(sql, server.endpoint, ACCESS_KEY, SECRET_KEY)


def scan(table) -> str:
    return f"iceberg_scan('{table.metadata_location}')"


def compare(rows: list[dict], records: list[dict], table, text_columns=None, json_columns=()) -> None:
    """Every row DuckDB read equals its sent record, column by column, in the table's
    column order (the expected values from the Iceberg schema, as the other readers' tests)."""
    schema = table.schema().as_arrow()
    assert len(rows) == len(records)
    for n, (row, record) in enumerate(zip(rows, records)):
        assert list(row) == schema.names
        for field in schema:
            got = row[field.name]
            if field.name in json_columns and got is not None:
                got = parse_json(got)
            want = sent_value(record, field, text_columns)
            assert got == want, f"row {n}, column {field.name}: DuckDB read {got!r}, sent {want!r}"
            if isinstance(want, float) and want == 0:
                assert str(got) == str(want), f"row {n}, column {field.name}: sign of zero"


def check_edge_table(server, table) -> None:
    types = duckdb_rows(server, f"DESCRIBE SELECT * FROM {scan(table)}")
    assert {r["column_name"]: r["column_type"] for r in types} == EDGE_DUCKDB_TYPES
    rows = duckdb_rows(server, f"SELECT * FROM {scan(table)} ORDER BY id")
    compare(rows, sorted(EDGE_RECORDS, key=lambda r: r["id"]), table, EDGE_TEXT, JSON_COLUMNS)


def test_edge_values_through_the_rest_catalog_read_exactly_by_duckdb(seaweed):
    ns = namespace()
    run = run_target(seaweed.iceberg_config(ns, iceberg_commit_interval_seconds=0), EDGE)
    assert run.returncode == 0, run.stderr
    check_edge_table(seaweed, seaweed.catalog().load_table(f"{ns}.edge"))


def test_a_replaced_table_is_read_by_duckdb_without_the_old_rows(seaweed):
    """An overwrite snapshot (the old files in manifests of deleted entries) read by a
    reader of its own: the edge rows once, not the first run's copy as well."""
    ns = namespace()
    assert run_target(seaweed.iceberg_config(ns), EDGE).returncode == 0
    run = run_target(seaweed.iceberg_config(ns, load_method="overwrite"), EDGE)
    assert run.returncode == 0, run.stderr
    table = seaweed.catalog().load_table(f"{ns}.edge")
    assert table.current_snapshot().summary.operation.value == "overwrite"
    check_edge_table(seaweed, table)


def test_edge_values_through_glue_over_two_runs_read_exactly_by_duckdb(server, bucket):
    db = database()
    config = glue_config(server, bucket, db, iceberg_commit_interval_seconds=0)
    # Two runs (the first three records, then the rest with the STATE), two snapshots:
    # DuckDB reads the current metadata file, so both.
    lines = EDGE.splitlines(keepends=True)
    for part in (lines[1:4], lines[4:]):
        run = run_target(config, lines[0] + "".join(part))
        assert run.returncode == 0, run.stderr
    table = glue_catalog(server).load_table(f"{db}.edge")
    assert len(table.metadata.snapshots) == 2
    check_edge_table(server, table)


def test_a_partitioned_table_read_exactly_by_duckdb(seaweed):
    ns = namespace()
    spec = ["day(created_at)", "country", "bucket(4, id)", "truncate(2, name)"]
    sent = events(12)
    run = run_target(seaweed.iceberg_config(ns, iceberg_partition_spec=spec), events_singer(sent))
    assert run.returncode == 0, run.stderr
    table = seaweed.catalog().load_table(f"{ns}.events")
    assert len(table.spec().fields) == 4
    rows = duckdb_rows(seaweed, f"SELECT * FROM {scan(table)} ORDER BY id")
    compare(rows, sent, table)
    assert list(rows[0]) == list(EVENTS_SCHEMA["properties"])
    # DuckDB lists the same data files as pyiceberg, and a filter reads the right rows.
    files = duckdb_rows(seaweed, f"SELECT file_path FROM iceberg_metadata('{table.metadata_location}') "
                                 "WHERE manifest_content = 'DATA'")
    assert sorted(f["file_path"] for f in files) == sorted(t.file.file_path for t in table.scan().plan_files())
    assert len(files) > 3
    fr = duckdb_rows(seaweed, f"SELECT id FROM {scan(table)} WHERE country = 'FR' "
                              "AND created_at >= TIMESTAMPTZ '2024-01-02 00:00:00+00' ORDER BY id")
    assert [r["id"] for r in fr] == [r["id"] for r in sent
                                     if r["country"] == "FR" and r["created_at"] >= "2024-01-02"]
    assert fr
