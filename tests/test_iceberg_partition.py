"""Partitioned Iceberg tables (`iceberg_partition_spec`) and identifier fields from
key_properties, in SeaweedFS's REST catalog, read back by pyiceberg: its spec, each data
file's partition tuple checked against pyiceberg's own transforms of the file's rows,
and row filters that prune files."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import pytest

from harness import SeaweedServer, run_target

pytest.importorskip("pyiceberg")

import pyarrow.parquet as pq  # noqa: E402
from pyiceberg.expressions import EqualTo, GreaterThanOrEqual  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "country": {"type": ["null", "string"]},
        "ratio": {"type": ["null", "number"]},
        "born": {"type": ["null", "string"], "format": "date"},
        "created_at": {"type": ["null", "string"], "format": "date-time"},
    },
}

COUNTRIES = ["FR", "DE", None]


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


def namespace() -> str:
    return f"ns_{uuid.uuid4().hex[:8]}"


def records(n: int, start: int = 0) -> list[dict]:
    """Rows over three days, three countries (one of them null) in each day, two months
    and two birth years."""
    out = []
    for i in range(start, start + n):
        out.append({"id": i, "name": f"{['ann', 'bob', 'cyd'][i % 3]}-{i}",
                    "country": COUNTRIES[(i // 3) % 3], "ratio": i / 4,
                    "born": f"{1990 + (i // 2) % 2}-01-15",
                    "created_at": f"2024-0{1 + (i // 9) % 2}-0{1 + i % 3}T{i % 24:02d}:30:00Z"})
    return out


def singer(rows: list[dict], stream: str = "events", keys: list[str] | None = None,
           schema: dict = SCHEMA) -> str:
    lines = [json.dumps({"type": "SCHEMA", "stream": stream, "schema": schema,
                         "key_properties": ["id"] if keys is None else keys})]
    lines += [json.dumps({"type": "RECORD", "stream": stream, "record": r}) for r in rows]
    lines.append(json.dumps({"type": "STATE", "value": {"done": len(rows)}}))
    return "\n".join(lines) + "\n"


def internal(value):
    """A Python value as pyiceberg's transforms take it (and as partition tuples hold it)."""
    if isinstance(value, dt.datetime):
        return (value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)
    if isinstance(value, dt.date):
        return (value - dt.date(1970, 1, 1)).days
    return value


def file_rows(seaweed, path: str) -> list[dict]:
    bucket, key = path.removeprefix("s3://").split("/", 1)
    body = seaweed.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pylist()


def check_partitions(seaweed, table) -> list:
    """Every data file's tuple is what pyiceberg's transforms make of each of its rows,
    and its folder names the partition; returns the files."""
    schema, spec = table.schema(), table.spec()
    files = [task.file for task in table.scan().plan_files()]
    assert files
    for file in files:
        assert file.spec_id == spec.spec_id
        rows = file_rows(seaweed, file.file_path)
        assert len(rows) == file.record_count
        for position, field in enumerate(spec.fields):
            source = schema.find_column_name(field.source_id)
            transform = field.transform.transform(schema.find_type(field.source_id))
            got = {transform(internal(row[source])) for row in rows}
            assert got == {internal(file.partition[position])}, (file.file_path, field.name)
            assert f"/{field.name}=" in file.file_path
    return files


def test_a_partitioned_table_splits_rows_by_day_and_country_and_prunes_files(seaweed):
    ns = namespace()
    config = seaweed.iceberg_config(ns, iceberg_partition_spec=["day(created_at)", "country"])
    sent = records(9)
    run = run_target(config, singer(sent))
    assert run.returncode == 0, run.stderr
    assert run.states == [{"done": len(sent)}]
    table = seaweed.catalog().load_table(f"{ns}.events")
    # The rows, exactly.
    got = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in got] == [r["id"] for r in sent]
    assert [r["country"] for r in got] == [r["country"] for r in sent]
    assert got[0]["created_at"] == dt.datetime(2024, 1, 1, 0, 30, tzinfo=dt.timezone.utc)
    # The spec: field names, transforms and source columns.
    spec = table.spec()
    schema = table.schema()
    assert [(f.name, str(f.transform), schema.find_column_name(f.source_id)) for f in spec.fields] == [
        ("created_at_day", "day", "created_at"), ("country", "identity", "country")]
    # One file per partition: three days, and three countries in each (one null).
    files = check_partitions(seaweed, table)
    assert len(files) == 9
    assert sum(f.record_count for f in files) == len(sent)
    paths = sorted(f.file_path for f in files)
    assert any("/data/created_at_day=2024-01-01/country=FR/" in p for p in paths), paths
    assert any("/country=__HIVE_DEFAULT_PARTITION__/" in p for p in paths), paths
    # Filters on the partition columns prune files.
    assert len(list(table.scan(row_filter=EqualTo("country", "FR")).plan_files())) == 3
    later = GreaterThanOrEqual("created_at", "2024-01-03T00:00:00+00:00")
    assert len(list(table.scan(row_filter=later).plan_files())) == 3
    assert {r["id"] for r in table.scan(row_filter=later).to_arrow().to_pylist()} == {
        r["id"] for r in sent if r["created_at"] >= "2024-01-03"}


def test_bucket_truncate_month_year_and_hour_match_pyiceberg_transforms(seaweed):
    ns = namespace()
    spec = {"events": ["bucket(4, id)", "truncate(3, name)", "month(created_at)"],
            "visits": ["year(born)", "hour(created_at)"]}
    config = seaweed.iceberg_config(ns, iceberg_partition_spec=spec)
    text = singer(records(24)) + singer(records(10), stream="visits") + singer(records(5), stream="other")
    run = run_target(config, text)
    assert run.returncode == 0, run.stderr
    catalog = seaweed.catalog()
    events = catalog.load_table(f"{ns}.events")
    assert [(f.name, str(f.transform)) for f in events.spec().fields] == [
        ("id_bucket", "bucket[4]"), ("name_trunc", "truncate[3]"), ("created_at_month", "month")]
    files = check_partitions(seaweed, events)
    # 3 names x 2 months (name and month go together) x 4 buckets at most.
    assert 6 <= len(files) <= 24
    assert sorted(r["id"] for r in events.scan().to_arrow().to_pylist()) == list(range(24))
    # Bucket pruning: one id reads only the files of its bucket.
    assert len(list(events.scan(row_filter=EqualTo("id", 7)).plan_files())) < len(files)
    visits = catalog.load_table(f"{ns}.visits")
    assert [(f.name, str(f.transform)) for f in visits.spec().fields] == [
        ("born_year", "year"), ("created_at_hour", "hour")]
    assert len(check_partitions(seaweed, visits)) == 10
    # A stream the setting does not name is not partitioned.
    other = catalog.load_table(f"{ns}.other")
    assert other.spec().is_unpartitioned()
    assert len(list(other.scan().plan_files())) == 1


def test_key_properties_become_identifier_fields_where_iceberg_allows(seaweed):
    ns = namespace()
    run = run_target(seaweed.iceberg_config(ns), singer(records(3), keys=["id", "name", "ratio"]))
    assert run.returncode == 0, run.stderr
    table = seaweed.catalog().load_table(f"{ns}.events")
    schema = table.schema()
    id_field, name_field = schema.find_field("id"), schema.find_field("name")
    # A double cannot be an identifier field: left out, with a warning naming it.
    assert sorted(schema.identifier_field_ids) == sorted([id_field.field_id, name_field.field_id])
    assert id_field.required and name_field.required
    assert not schema.find_field("ratio").required
    assert "\"ratio\"" in run.stderr and "identifier" in run.stderr, run.stderr
    # Required in the table, still read back by pyiceberg from the files.
    got = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert [r["name"] for r in got] == ["ann-0", "bob-1", "cyd-2"]
    # A record without a key value is refused, so a required column never meets a null.
    run = run_target(seaweed.iceberg_config(ns), singer([{"id": 9, "name": None}], keys=["id", "name"]))
    assert run.returncode != 0
    assert "key property \"name\"" in run.stderr, run.stderr
    assert len(table.refresh().scan().to_arrow()) == 3


def test_a_table_keeps_its_partitioning(seaweed):
    ns = namespace()
    first = seaweed.iceberg_config(ns, iceberg_partition_spec=["country"])
    assert run_target(first, singer(records(6))).returncode == 0
    # A different spec for the table is refused, naming the table, its spec and the asked one.
    other = seaweed.iceberg_config(ns, iceberg_partition_spec=["day(created_at)"])
    run = run_target(other, singer(records(3, start=100)))
    assert run.returncode != 0
    assert f"{ns}.events" in run.stderr and '["country"]' in run.stderr, run.stderr
    assert '"day(created_at)"' in run.stderr, run.stderr
    assert run.states == []
    # No spec given: the table's own is followed.
    run = run_target(seaweed.iceberg_config(ns), singer(records(3, start=100)))
    assert run.returncode == 0, run.stderr
    table = seaweed.catalog().load_table(f"{ns}.events")
    assert sorted(r["id"] for r in table.scan().to_arrow().to_pylist()) == [0, 1, 2, 3, 4, 5, 100, 101, 102]
    files = check_partitions(seaweed, table)
    # Each run wrote one file per country it had: FR and DE, then FR and DE.
    assert len(files) == 4


@pytest.mark.parametrize("entry, words", [
    ("day(nope)", ["\"day(nope)\"", "\"nope\"", "not among the stream's columns"]),
    ("bucket(4, ratio)", ["\"bucket(4, ratio)\"", "\"ratio\"", "double", "bucket"]),
    ("hour(born)", ["\"hour(born)\"", "\"born\"", "date", "hour"]),
    ("truncate(2, created_at)", ["\"created_at\"", "timestamptz", "truncate"]),
])
def test_a_spec_the_stream_cannot_take_stops_at_its_schema(seaweed, entry, words):
    ns = namespace()
    run = run_target(seaweed.iceberg_config(ns, iceberg_partition_spec={"events": [entry]}), singer(records(2)))
    assert run.returncode != 0
    assert "events" in run.stderr, run.stderr
    for word in words:
        assert word in run.stderr, run.stderr
    assert run.states == []
    assert not seaweed.catalog().table_exists(f"{ns}.events")


@pytest.mark.parametrize("value, words", [
    (["week(created_at)"], ["iceberg_partition_spec", "\"week\" is not a transform"]),
    (["bucket(id)"], ["iceberg_partition_spec", "takes a number and a column"]),
    ({"events": 5}, ["iceberg_partition_spec", "expected entries"]),
])
def test_the_setting_is_checked_at_start(seaweed, value, words):
    ns = namespace()
    run = run_target(seaweed.iceberg_config(ns, iceberg_partition_spec=value), singer(records(2)))
    assert run.returncode != 0
    for word in words:
        assert word in run.stderr, run.stderr
    assert not seaweed.catalog().table_exists(f"{ns}.events")


def test_the_setting_as_json_text_and_only_with_iceberg(seaweed):
    ns = namespace()
    config = seaweed.iceberg_config(ns, iceberg_partition_spec='["country"]')
    assert run_target(config, singer(records(3))).returncode == 0
    table = seaweed.catalog().load_table(f"{ns}.events")
    assert [f.name for f in table.spec().fields] == ["country"]
    files = dict(seaweed.iceberg_config(ns), table_format="files", bucket="b", object_key_path="x",
                 iceberg_partition_spec=["country"])
    run = run_target(files, singer(records(1)))
    assert run.returncode != 0
    assert "iceberg_partition_spec" in run.stderr and "partition_by" in run.stderr, run.stderr


def test_null_and_strings_that_look_like_it_are_partitions_of_their_own(seaweed):
    ns = namespace()
    config = seaweed.iceberg_config(ns, iceberg_partition_spec=["country"])
    looks = [None, "null", "__HIVE_DEFAULT_PARTITION__", "", "__EMPTY__", "a/b", "a%2Fb"]
    sent = [dict(r, country=looks[r["id"] % len(looks)]) for r in records(14)]
    run = run_target(config, singer(sent))
    assert run.returncode == 0, run.stderr
    table = seaweed.catalog().load_table(f"{ns}.events")
    files = check_partitions(seaweed, table)
    assert sorted((f.partition[0] is None, f.partition[0] or "") for f in files) == sorted(
        (v is None, v or "") for v in looks)
    got = {r["id"]: r["country"] for r in table.scan().to_arrow().to_pylist()}
    assert got == {r["id"]: r["country"] for r in sent}
    assert len(list(table.scan(row_filter=EqualTo("country", "null")).plan_files())) == 1
