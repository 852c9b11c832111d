"""Iceberg tables in an Amazon S3 Tables table bucket (`iceberg_catalog_type: s3tables`),
against moto's S3 Tables and S3 (one port; two of its answers patched for the Rust SDK in
moto_server.py). pyiceberg has no S3 Tables catalog: the tables are read by pyiceberg from
the metadata file the service points at (StaticTable), and by polars over the same.
moto's S3 Tables refuses a stale version token, so two writers at once race for real."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import boto3
import pytest

from harness import ACCESS_KEY, SECRET_KEY, run_target
from test_iceberg import EDGE, SCHEMA, many, schema_with, singer, two_writers
from test_iceberg_glue import polars_rows, rows

pytest.importorskip("pyiceberg")


def s3tables(server):
    return boto3.client("s3tables", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


@pytest.fixture
def table_bucket(server) -> str:
    """A new table bucket's ARN."""
    return s3tables(server).create_table_bucket(name=f"lake-{uuid.uuid4().hex[:8]}")["arn"]


def config_for(server, arn: str, **extra) -> dict:
    return {"file_type": "parquet", "table_format": "iceberg",
            "iceberg_catalog_type": "s3tables", "iceberg_catalog_uri": server.endpoint,
            "iceberg_warehouse": arn, "iceberg_namespace": "raw",
            "aws_endpoint": server.endpoint, "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY, "aws_region": "us-east-1", **extra}


def load(server, arn: str, name: str = "public_users"):
    """The table as the service points at it now, read by pyiceberg."""
    from pyiceberg.table import StaticTable

    at = s3tables(server).get_table_metadata_location(tableBucketARN=arn, namespace="raw", name=name)
    properties = {"s3.endpoint": server.endpoint, "s3.access-key-id": ACCESS_KEY,
                  "s3.secret-access-key": SECRET_KEY, "s3.region": "us-east-1",
                  "s3.path-style-access": "true"}
    return StaticTable.from_metadata(at["metadataLocation"], properties), at


def test_edge_values_and_a_second_run_read_exactly_by_two_readers(server, table_bucket):
    config = config_for(server, table_bucket, iceberg_commit_interval_seconds=0)
    run = run_target(config, singer(EDGE))
    assert run.returncode == 0, run.stderr
    assert run.states == [{"done": 3}]
    table, at = load(server, table_bucket)
    # The service chose the location; the metadata files are under it.
    assert table.location() == at["warehouseLocation"]
    assert at["metadataLocation"].startswith(at["warehouseLocation"] + "/metadata/00001-")
    got = rows(table)
    low, zero, high = got
    assert low["id"] == -9223372036854775808 and high["id"] == 9223372036854775807
    assert low["price"] == Decimal("-99999999.99") and high["price"] == Decimal("99999999.99")
    assert str(low["ratio"]) == "-0.0" and high["ratio"] == 1.7976931348623157e308
    assert low["born"] == dt.date(1, 1, 1) and high["born"] == dt.date(9999, 12, 31)
    assert high["updated_at"] == dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
    assert high["name"] == "naïve ☃ 𝄞" and high["address"] == {"city": "Zürich", "zip": 8001}
    assert zero == {k: (0 if k == "id" else None) for k in SCHEMA["properties"]}
    second = polars_rows(server, table)
    assert [r["id"] for r in second] == [r["id"] for r in got]
    assert [r["price"] for r in second] == [r["price"] for r in got]
    # A second run appends, and its new property becomes a column.
    schema = schema_with(email={"type": ["null", "string"]})
    later = [dict(r, email=f"{r['id']}@x") for r in many(2, start=1)]
    run = run_target(config, singer(later, schema=schema))
    assert run.returncode == 0, run.stderr
    table, _ = load(server, table_bucket)
    got = rows(table)
    assert [r["id"] for r in got] == [-9223372036854775808, 0, 1, 2, 9223372036854775807]
    assert [r["email"] for r in got] == [None, None, "1@x", "2@x", None]
    snapshots = sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)
    assert [json.loads(s.summary["singer.state"]) for s in snapshots] == [{"done": 3}, {"done": 2}]


def test_two_writers_at_once_both_commit(server, table_bucket, tmp_path):
    config = config_for(server, table_bucket, iceberg_commit_interval_seconds=0, max_batch_rows=200)
    assert run_target(config, singer(many(1))).returncode == 0
    two_writers(config, tmp_path)
    table, _ = load(server, table_bucket)
    assert [r["id"] for r in rows(table)] == [0] + list(range(1000, 2000)) + list(range(5000, 6000))
    assert len(table.metadata.snapshots) >= 5


def test_a_wrong_table_bucket_names_the_catalog(server):
    arn = "arn:aws:s3tables:us-east-1:123456789012:bucket/missing"
    run = run_target(config_for(server, arn), singer(many(1)))
    assert run.returncode != 0
    assert f"Iceberg catalog {server.endpoint}" in run.stderr, run.stderr
    assert 'S3 Tables CreateNamespace namespace "raw" failed: NotFoundException' in run.stderr
    assert run.states == []


def test_a_table_made_without_a_metadata_file_is_taken_over(server, table_bucket):
    # A writer that stopped between CreateTable and its first metadata file leaves an
    # empty table: the next run gives it one instead of failing on it.
    client = s3tables(server)
    client.create_namespace(tableBucketARN=table_bucket, namespace=["raw"])
    client.create_table(tableBucketARN=table_bucket, namespace="raw", name="public_users",
                        format="ICEBERG")
    run = run_target(config_for(server, table_bucket), singer(many(2)))
    assert run.returncode == 0, run.stderr
    table, _ = load(server, table_bucket)
    assert [r["id"] for r in rows(table)] == [0, 1]
