"""Glue Data Catalog tables over plain files (`glue_catalog: true`), against moto's Glue
(served on the same port as its S3): the table's columns, types, SerDe and partition keys,
the partitions added after their objects are stored, widening on a changed SCHEMA, and
that no STATE passes objects whose partition Glue did not take."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from fault_proxy import FaultProxy, Rule
from harness import ACCESS_KEY, SECRET_KEY, base_config, free_port, list_keys, run_target

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "country": {"type": ["null", "string"]},
        "price": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1e6, "minimum": -1e6},
        "ratio": {"type": ["null", "number"]},
        "active": {"type": ["null", "boolean"]},
        "born": {"type": ["null", "string"], "format": "date"},
        "updated_at": {"type": ["null", "string"], "format": "date-time"},
        "opens": {"type": ["null", "string"], "format": "time"},
        "tags": {"type": ["null", "array"], "items": {"type": "string"}},
        "address": {"type": ["null", "object"], "properties": {
            "city": {"type": ["null", "string"]}, "zip": {"type": ["null", "integer"]}}},
    },
}

PARQUET_TYPES = [
    ("id", "bigint"), ("country", "string"), ("price", "decimal(9,2)"), ("ratio", "double"),
    ("active", "boolean"), ("born", "date"), ("updated_at", "timestamp"), ("opens", "string"),
    ("tags", "array<string>"), ("address", "struct<city:string,zip:bigint>"),
]


def record(i: int, country: str | None) -> dict:
    return {"id": i, "country": country, "price": 1.25, "ratio": 0.5, "active": True,
            "born": "2000-01-02", "updated_at": "2024-03-05T10:11:12Z", "opens": "09:00:00",
            "tags": ["a"], "address": {"city": "Lyon", "zip": 69001}}


def singer(records: list[dict], stream: str = "orders", schema: dict = SCHEMA, states: bool = True) -> str:
    lines = [{"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": ["id"]}]
    for n, r in enumerate(records, 1):
        lines.append({"type": "RECORD", "stream": stream, "record": r})
        if states:
            lines.append({"type": "STATE", "value": {"at": n}})
    return "".join(json.dumps(line) + "\n" for line in lines)


def glue_client(server):
    return boto3.client("glue", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def glue_config(server, bucket, database, **extra) -> dict:
    settings = {"glue_catalog": True, "glue_database": database, "glue_endpoint": server.endpoint}
    return base_config(server, bucket, **{**settings, **extra})


def database() -> str:
    return f"lake_{uuid.uuid4().hex[:8]}"


def columns(table: dict) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]


def partitions(server, db: str, table: str) -> dict[tuple, str]:
    answer = glue_client(server).get_partitions(DatabaseName=db, TableName=table)
    return {tuple(p["Values"]): p["StorageDescriptor"]["Location"] for p in answer["Partitions"]}


def folders_of(bucket: str, keys: list[str]) -> set[str]:
    return {f"s3://{bucket}/{key.rsplit('/', 1)[0]}/" for key in keys}


def test_parquet_table_with_partitions_from_partition_by_and_date_folders(server, bucket):
    db = database()
    config = glue_config(server, bucket, db, partition_by=["country"],
                         date_partition_format="year=%Y/%m")
    run = run_target(config, singer([record(1, "FR"), record(2, "D/E"), record(3, None)]))
    assert run.returncode == 0, run.stderr
    assert run.states[-1] == {"at": 3}
    table = glue_client(server).get_table(DatabaseName=db, Name="orders")["Table"]
    assert columns(table) == PARQUET_TYPES
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        ("year", "string"), ("month", "string"), ("country_part", "string")]
    storage = table["StorageDescriptor"]
    assert storage["Location"] == f"s3://{bucket}/exports/run/orders/"
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    assert storage["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["classification"] == "parquet"
    keys = list_keys(server, bucket, "exports/run/orders/")
    assert len(keys) == 3
    found = partitions(server, db, "orders")
    # One partition per folder holding objects, its location that folder.
    assert set(found.values()) == folders_of(bucket, keys)
    values = {v[2]: v for v in found}
    assert set(values) == {"FR", "D/E", "__HIVE_DEFAULT_PARTITION__"}
    year, month, _ = values["FR"]
    assert found[values["FR"]] == f"s3://{bucket}/exports/run/orders/year={year}/{month}/country_part=FR/"
    assert found[values["D/E"]].endswith(f"year={year}/{month}/country_part=D%2FE/")
    assert len(year) == 4 and len(month) == 2


def test_a_second_run_adds_its_new_partition(server, bucket):
    db = database()
    config = glue_config(server, bucket, db, partition_by=["country"])
    first = run_target(config, singer([record(1, "FR")]))
    assert first.returncode == 0, first.stderr
    assert set(partitions(server, db, "orders")) == {("FR",)}
    # FR again (already there: fine) and DE, new.
    second = run_target(config, singer([record(2, "FR"), record(3, "DE")]))
    assert second.returncode == 0, second.stderr
    assert second.states[-1] == {"at": 2}
    found = partitions(server, db, "orders")
    assert set(found) == {("FR",), ("DE",)}
    assert found[("DE",)] == f"s3://{bucket}/exports/run/orders/country_part=DE/"
    assert folders_of(bucket, list_keys(server, bucket, "exports/run/orders/")) == set(found.values())


def test_an_unpartitioned_table_has_no_partitions(server, bucket):
    db = database()
    run = run_target(glue_config(server, bucket, db), singer([record(1, "FR")], stream="public-users"))
    assert run.returncode == 0, run.stderr
    table = glue_client(server).get_table(DatabaseName=db, Name="public_users")["Table"]
    assert table["PartitionKeys"] == []
    assert table["StorageDescriptor"]["Location"] == f"s3://{bucket}/exports/run/public-users/"
    assert partitions(server, db, "public_users") == {}


def test_jsonl_table(server, bucket):
    db = database()
    run = run_target(glue_config(server, bucket, db, file_type="jsonl",
                                 date_partition_format="%Y/%m/%d"), singer([record(1, "FR")]))
    assert run.returncode == 0, run.stderr
    table = glue_client(server).get_table(DatabaseName=db, Name="orders")["Table"]
    assert columns(table) == PARQUET_TYPES
    storage = table["StorageDescriptor"]
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert storage["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["year", "month", "day"]
    [(values, location)] = partitions(server, db, "orders").items()
    assert location == f"s3://{bucket}/exports/run/orders/{'/'.join(values)}/"


def test_csv_table_reads_every_column_as_text(server, bucket):
    db = database()
    config = glue_config(server, bucket, db, file_type="csv", csv_delimiter=";",
                         partition_by=["country"])
    run = run_target(config, singer([record(1, "FR")]))
    assert run.returncode == 0, run.stderr
    table = glue_client(server).get_table(DatabaseName=db, Name="orders")["Table"]
    assert columns(table) == [(name, "string") for name, _ in PARQUET_TYPES]
    serde = table["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.OpenCSVSerde"
    assert serde["Parameters"]["separatorChar"] == ";"
    assert serde["Parameters"]["quoteChar"] == '"'
    assert table["Parameters"]["skip.header.line.count"] == "1"
    assert set(partitions(server, db, "orders")) == {("FR",)}


def test_an_added_column_widens_the_table(server, bucket):
    db = database()
    config = glue_config(server, bucket, db)
    first = run_target(config, singer([record(1, "FR")]))
    assert first.returncode == 0, first.stderr
    wider = json.loads(json.dumps(SCHEMA))
    wider["properties"]["note"] = {"type": ["null", "string"]}
    # Within one run: a new SCHEMA with the column, then its records.
    text = singer([record(2, "FR")]) + singer([{**record(3, "DE"), "note": "x"}], schema=wider)
    second = run_target(config, text)
    assert second.returncode == 0, second.stderr
    table = glue_client(server).get_table(DatabaseName=db, Name="orders")["Table"]
    assert columns(table) == PARQUET_TYPES + [("note", "string")]
    assert "added columns [\"note\"]" in second.stderr
    # A later run whose SCHEMA lacks the column keeps it in the table.
    third = run_target(config, singer([record(4, "FR")]))
    assert third.returncode == 0, third.stderr
    table = glue_client(server).get_table(DatabaseName=db, Name="orders")["Table"]
    assert columns(table) == PARQUET_TYPES + [("note", "string")]


def test_an_incompatible_change_stops_the_run_naming_the_column(server, bucket):
    db = database()
    config = glue_config(server, bucket, db)
    changed = json.loads(json.dumps(SCHEMA))
    changed["properties"]["price"] = {"type": ["null", "string"]}
    text = singer([record(1, "FR")]) + singer([{**record(2, "FR"), "price": "x"}], schema=changed)
    run = run_target(config, text)
    assert run.returncode == 1
    assert 'input line 4, stream "orders"' in run.stderr
    assert 'column "price" changed its type from decimal(9,2) to string' in run.stderr
    # What came before the change is stored, and its STATE written.
    assert run.states == [{"at": 1}]
    table = glue_client(server).get_table(DatabaseName=db, Name="orders")["Table"]
    assert columns(table) == PARQUET_TYPES


def test_a_partition_key_that_is_a_column_stops_the_run(server, bucket):
    schema = json.loads(json.dumps(SCHEMA))
    schema["properties"]["year"] = {"type": ["null", "integer"]}
    run = run_target(glue_config(server, bucket, database(), date_partition_format="%Y"),
                     singer([record(1, "FR")], schema=schema))
    assert run.returncode == 1
    assert 'input line 1, stream "orders"' in run.stderr
    assert 'the partition key "year" is also a column' in run.stderr
    assert run.stdout == ""


def test_a_layout_with_other_folders_is_refused_at_start_up(server, bucket):
    config = glue_config(server, bucket, database(),
                         object_key_template="{object_key_path}/{table}/{date:%Y}/{run_id}-{part}.{ext}")
    run = run_target(config, singer([record(1, "FR")]))
    assert run.returncode == 1
    assert 'the folder "{date:%Y}" after the table\'s folder is not a partition folder' in run.stderr
    assert list_keys(server, bucket) == []


def test_glue_that_refuses_partitions_holds_the_state(server, bucket):
    db = database()
    proxy = FaultProxy(server.port, [Rule("BatchCreatePartition", "500", times=None)])
    try:
        config = glue_config(server, bucket, db, partition_by=["country"], max_attempts=2,
                             glue_endpoint=proxy.endpoint)
        run = run_target(config, singer([record(1, "FR"), record(2, "DE")]))
    finally:
        proxy.stop()
    assert run.returncode == 1
    assert "Glue BatchCreatePartition" in run.stderr
    # The objects are stored, but their partitions are not in the table: no STATE.
    assert len(list_keys(server, bucket, "exports/run/orders/")) == 2
    assert run.stdout == ""
    assert partitions(server, db, "orders") == {}
    assert SECRET_KEY not in run.stderr


def test_state_goes_as_far_as_the_objects_glue_took(server, bucket):
    """Stream "plain" needs no partition; stream "orders" does, and Glue refuses it: the
    STATE after plain's record is written, the one after orders' record is not."""
    db = database()
    proxy = FaultProxy(server.port, [Rule("BatchCreatePartition", "500", times=None)])
    plain = {"type": "object", "properties": {"id": {"type": "integer"}}}
    lines = [
        {"type": "SCHEMA", "stream": "plain", "schema": plain, "key_properties": ["id"]},
        {"type": "RECORD", "stream": "plain", "record": {"id": 1}},
        {"type": "STATE", "value": {"plain": 1}},
        {"type": "SCHEMA", "stream": "orders", "schema": SCHEMA, "key_properties": ["id"]},
        {"type": "RECORD", "stream": "orders", "record": record(1, "FR")},
        {"type": "STATE", "value": {"orders": 1}},
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    try:
        config = glue_config(server, bucket, db, partition_by={"orders": ["country"]},
                             max_batch_rows=1, max_attempts=2, glue_endpoint=proxy.endpoint)
        run = run_target(config, text)
    finally:
        proxy.stop()
    assert run.returncode == 1
    assert "Glue BatchCreatePartition" in run.stderr
    assert run.states == [{"plain": 1}]
    assert len(list_keys(server, bucket, "exports/run/orders/")) == 1
    assert partitions(server, db, "orders") == {}


def test_an_unreachable_glue_endpoint_fails_before_any_input(server, bucket):
    config = glue_config(server, bucket, database(), glue_endpoint=f"http://127.0.0.1:{free_port()}",
                         max_attempts=1)
    run = run_target(config, singer([record(1, "FR")]))
    assert run.returncode == 1
    assert "Glue GetDatabase" in run.stderr and "no answer from http://127.0.0.1:" in run.stderr
    assert run.stdout == ""
    assert list_keys(server, bucket) == []
    assert SECRET_KEY not in run.stderr


def test_streams_sharing_a_table_setting_share_one_table(server, bucket):
    db = database()
    text = singer([record(1, "FR")], stream="a") + singer([record(2, "DE")], stream="b")
    run = run_target(glue_config(server, bucket, db, table="Sales", partition_by=["country"]), text)
    assert run.returncode == 0, run.stderr
    table = glue_client(server).get_table(DatabaseName=db, Name="sales")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{bucket}/exports/run/Sales/"
    assert set(partitions(server, db, "sales")) == {("FR",), ("DE",)}



def test_two_folders_that_make_one_table_name_stop_the_run(server, bucket):
    text = singer([record(1, "FR")], stream="a-b") + singer([record(2, "DE")], stream="a_b")
    run = run_target(glue_config(server, bucket, database()), text)
    assert run.returncode == 1
    assert 'stream "a_b": Glue table "a_b": the folders "exports/run/a-b/" and "exports/run/a_b/" would share it' in run.stderr
    assert run.states == [{"at": 1}]

if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
