"""Iceberg tables in the AWS Glue Data Catalog (`iceberg_catalog_type: glue`), against
moto's Glue and S3 (one port): tables made, appended over several commits and runs,
widened by a new property, and read back by pyiceberg's own GlueCatalog and by polars'
Parquet reader over pyiceberg's file list (DuckDB's iceberg extension reads them in
test_iceberg_duckdb.py). moto's Glue accepts a stale VersionId, so races are tested on the REST catalog
(test_iceberg.py), not here."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import boto3
import pytest

from harness import ACCESS_KEY, SECRET_KEY, free_port, run_target
from test_iceberg import EDGE, SCHEMA, assert_edge_rows, many, schema_with, singer

pytest.importorskip("pyiceberg")


def database() -> str:
    return f"lake_{uuid.uuid4().hex[:8]}"


def glue_config(server, bucket: str, db: str, **extra) -> dict:
    """A target-s3 config that lands streams as Iceberg tables in moto's Glue."""
    return {"file_type": "parquet", "table_format": "iceberg",
            "iceberg_catalog_type": "glue", "iceberg_catalog_uri": server.endpoint,
            "iceberg_warehouse": f"s3://{bucket}/warehouse", "iceberg_namespace": db,
            "aws_endpoint": server.endpoint, "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY, "aws_region": "us-east-1", **extra}


def glue_client(server):
    return boto3.client("glue", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def catalog(server):
    """pyiceberg's own Glue catalog client, on moto's endpoint."""
    from pyiceberg.catalog.glue import GlueCatalog

    return GlueCatalog("glue", **{
        "glue.endpoint": server.endpoint, "glue.region": "us-east-1",
        "glue.access-key-id": ACCESS_KEY, "glue.secret-access-key": SECRET_KEY,
        "s3.endpoint": server.endpoint, "s3.access-key-id": ACCESS_KEY,
        "s3.secret-access-key": SECRET_KEY, "s3.region": "us-east-1",
        "s3.path-style-access": "true"})


def polars_rows(server, table) -> list[dict]:
    """The second reader: polars reads the data files pyiceberg lists, with its own
    Parquet reader."""
    import polars as pl

    options = {"aws_endpoint_url": server.endpoint, "aws_access_key_id": ACCESS_KEY,
               "aws_secret_access_key": SECRET_KEY, "aws_region": "us-east-1",
               "aws_allow_http": "true", "aws_virtual_hosted_style_request": "false"}
    frame = pl.scan_iceberg(table, storage_options=options).collect().sort("id")
    return frame.to_dicts()


def rows(table) -> list[dict]:
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])


def test_edge_values_over_several_commits_read_exactly_by_two_readers(server, bucket):
    db = database()
    config = glue_config(server, bucket, db, iceberg_commit_interval_seconds=0, max_batch_rows=2)
    # Three commits: the edge values, then two more runs' rows.
    for records in (EDGE, many(2, start=1), many(1, start=3)):
        run = run_target(config, singer(records))
        assert run.returncode == 0, run.stderr
        assert run.states == [{"done": len(records)}]
    table = catalog(server).load_table(f"{db}.public_users")
    snapshots = sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)
    assert [json.loads(s.summary["singer.state"])["done"] for s in snapshots] == [3, 2, 1]
    assert [int(s.summary["added-records"]) for s in snapshots] == [3, 2, 1]
    assert len({s.summary["singer.run-id"] for s in snapshots}) == 3
    assert table.location() == f"s3://{bucket}/warehouse/{db}/public_users"
    got = rows(table)
    assert [r["id"] for r in got] == [-9223372036854775808, 0, 1, 2, 3, 9223372036854775807]
    low, zero, high = got[0], got[1], got[-1]
    assert_edge_rows(low, zero, high, table)
    second = polars_rows(server, table)
    assert [r["id"] for r in second] == [r["id"] for r in got]
    assert [r["name"] for r in second] == [r["name"] for r in got]
    assert [r["price"] for r in second] == [r["price"] for r in got]
    assert second[0]["born"] == dt.date(1, 1, 1) and second[-1]["updated_at"].year == 9999
    assert second[-1]["address"] == {"city": "Zürich", "zip": 8001}


def test_the_glue_entry_points_at_the_current_metadata_file(server, bucket):
    db = database()
    config = glue_config(server, bucket, db, iceberg_commit_interval_seconds=0)
    assert run_target(config, singer(many(3))).returncode == 0
    entry = glue_client(server).get_table(DatabaseName=db, Name="public_users")["Table"]
    parameters = entry["Parameters"]
    assert parameters["table_type"] == "ICEBERG"
    table = catalog(server).load_table(f"{db}.public_users")
    assert parameters["metadata_location"] == table.metadata_location
    # The first commit after the table's creation: file 00001, pointing back at 00000.
    assert "/metadata/00001-" in parameters["metadata_location"]
    assert "/metadata/00000-" in parameters["previous_metadata_location"]
    assert entry["StorageDescriptor"]["Location"] == f"s3://{bucket}/warehouse/{db}/public_users"
    columns = {c["Name"]: c["Type"] for c in entry["StorageDescriptor"]["Columns"]}
    assert columns["id"] == "bigint" and columns["price"] == "decimal(13,2)"
    assert columns["address"] == "struct<city:string,zip:bigint>"
    assert columns["tags"] == "array<string>" and columns["updated_at"] == "timestamp"


def test_a_second_run_appends_and_a_new_property_becomes_a_column(server, bucket):
    db = database()
    config = glue_config(server, bucket, db)
    assert run_target(config, singer(many(10))).returncode == 0
    schema = schema_with(email={"type": ["null", "string"]})
    later = [dict(r, email=f"{r['id']}@x") for r in many(5, start=10)]
    run = run_target(config, singer(later, schema=schema))
    assert run.returncode == 0, run.stderr
    table = catalog(server).load_table(f"{db}.public_users")
    got = rows(table)
    assert [r["id"] for r in got] == list(range(15))
    assert [r["email"] for r in got] == [None] * 10 + [f"{i}@x" for i in range(10, 15)]
    assert len(table.metadata.snapshots) == 2
    assert [r["email"] for r in polars_rows(server, table)] == [r["email"] for r in got]
    # Glue's columns follow the widened schema.
    entry = glue_client(server).get_table(DatabaseName=db, Name="public_users")["Table"]
    assert "email" in [c["Name"] for c in entry["StorageDescriptor"]["Columns"]]


def test_a_table_pyiceberg_made_is_appended_to(server, bucket):
    db = database()
    config = glue_config(server, bucket, db)
    assert run_target(config, singer(many(2))).returncode == 0
    # Another writer (pyiceberg) commits between two runs: the next run builds on it.
    table = catalog(server).load_table(f"{db}.public_users")
    table.append(table.scan().to_arrow().slice(0, 1))
    run = run_target(config, singer(many(2, start=2)))
    assert run.returncode == 0, run.stderr
    table = catalog(server).load_table(f"{db}.public_users")
    assert [r["id"] for r in rows(table)] == [0, 0, 1, 2, 3]
    assert len(table.metadata.snapshots) == 3


def test_parameters_others_set_on_the_glue_table_are_kept(server, bucket):
    db = database()
    config = glue_config(server, bucket, db)
    assert run_target(config, singer(many(1))).returncode == 0
    glue = glue_client(server)
    entry = glue.get_table(DatabaseName=db, Name="public_users")["Table"]
    parameters = dict(entry["Parameters"], owner_team="data", classification="parquet")
    glue.update_table(DatabaseName=db, TableInput={
        "Name": "public_users", "TableType": entry["TableType"], "Parameters": parameters,
        "StorageDescriptor": entry["StorageDescriptor"]})
    assert run_target(config, singer(many(1, start=1))).returncode == 0
    after = glue.get_table(DatabaseName=db, Name="public_users")["Table"]["Parameters"]
    assert after["owner_team"] == "data" and after["classification"] == "parquet"
    assert after["previous_metadata_location"] == parameters["metadata_location"]
    assert after["metadata_location"] == catalog(server).load_table(f"{db}.public_users").metadata_location


def test_a_glue_table_that_is_not_iceberg_stops_the_run(server, bucket):
    db = database()
    glue = glue_client(server)
    glue.create_database(DatabaseInput={"Name": db})
    glue.create_table(DatabaseName=db, TableInput={
        "Name": "public_users", "TableType": "EXTERNAL_TABLE",
        "StorageDescriptor": {"Location": f"s3://{bucket}/plain/", "Columns": []}})
    run = run_target(glue_config(server, bucket, db), singer(many(1)))
    assert run.returncode != 0
    assert "not an Iceberg table" in run.stderr and "public_users" in run.stderr, run.stderr
    assert run.states == []


def test_the_glue_database_is_made_and_the_warehouse_is_checked(server, bucket):
    db = database()
    assert run_target(glue_config(server, bucket, db), singer(many(1))).returncode == 0
    assert glue_client(server).get_database(Name=db)["Database"]["Name"] == db
    run = run_target(glue_config(server, bucket, db, iceberg_warehouse="warehouse"), singer(many(1)))
    assert run.returncode != 0 and "iceberg_warehouse" in run.stderr, run.stderr
    run = run_target(glue_config(server, bucket, "raw.sales"), singer(many(1)))
    assert run.returncode != 0 and "one level" in run.stderr, run.stderr


def test_an_unreachable_glue_endpoint_names_the_setting_and_no_secret(server, bucket):
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = glue_config(server, bucket, database(), iceberg_catalog_uri=endpoint, max_attempts=1)
    run = run_target(config, singer(many(1)))
    assert run.returncode == 1
    assert f"no answer from {endpoint} (check iceberg_catalog_uri" in run.stderr, run.stderr
    assert "Glue GetDatabase" in run.stderr and SECRET_KEY not in run.stderr
    assert run.stdout == ""
