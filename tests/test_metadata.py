"""Singer metadata columns (`add_metadata_columns`): six `_sdc_` columns after each
stream's own, typed, filled from the RECORD message, the record and the run's clock,
read back by pyarrow, DuckDB and Python's csv; nothing added when the setting is off."""

import datetime as dt
import io
import json

import duckdb
import pyarrow.parquet as pq
import pytest

from harness import base_config, get_bytes, list_keys, read_csv, read_parquet, run_target

UTC = dt.timezone.utc
METADATA = ["_sdc_extracted_at", "_sdc_received_at", "_sdc_batched_at", "_sdc_deleted_at",
            "_sdc_sequence", "_sdc_table_version"]
TIMESTAMPS = METADATA[:4]


def schema(stream, properties, keys=("n",)):
    return {"type": "SCHEMA", "stream": stream, "key_properties": list(keys),
            "schema": {"properties": properties}}


def record(stream, rec, **envelope):
    return {"type": "RECORD", "stream": stream, "record": rec, **envelope}


OWN = {"n": {"type": "integer"}, "name": {"type": ["null", "string"]}}

# Two interleaved streams: `a` with versions from ACTIVATE_VERSION and from records,
# deletions and every form of time_extracted; `b` with none of them. `n` is the input order.
MESSAGES = [
    schema("a", OWN),
    schema("b", OWN),
    {"type": "ACTIVATE_VERSION", "stream": "a", "version": 10},
    record("a", {"n": 0, "name": "x"}, time_extracted="2024-03-01T12:00:00.123456Z"),
    record("b", {"n": 1, "name": "y"}),
    record("a", {"n": 2, "name": None}, version=11, time_extracted="2024-03-01T14:00:00+02:00"),
    record("a", {"n": 3, "_sdc_deleted_at": "2024-03-02T00:00:00.5Z"}, time_extracted=None),
    record("b", {"n": 4}, time_extracted="2024-03-01 12:00:01"),
    {"type": "STATE", "value": {"bookmarks": {"a": 3}}},
    {"type": "ACTIVATE_VERSION", "stream": "a", "version": 12},
    record("a", {"n": 5, "_sdc_deleted_at": None}, time_extracted="2024-03-01T12:00:02Z"),
    record("b", {"n": 6}, version=7),
]
TEXT = "\n".join(json.dumps(m) for m in MESSAGES) + "\n"

# What each row's extracted_at, deleted_at and table_version must be, by `n`.
EXPECTED = {
    0: ("2024-03-01T12:00:00.123456+00:00", None, 10),
    1: (None, None, None),
    2: ("2024-03-01T12:00:00+00:00", None, 11),
    3: (None, "2024-03-02T00:00:00.500000+00:00", 10),
    4: ("2024-03-01T12:00:01+00:00", None, None),
    5: ("2024-03-01T12:00:02+00:00", None, 12),
    6: (None, None, 7),
}


def at(text):
    return None if text is None else dt.datetime.fromisoformat(text)


def load(server, bucket, text=TEXT, **settings):
    """Runs the target with metadata columns on; returns the run and the wall-clock
    interval around it."""
    settings.setdefault("add_metadata_columns", True)
    start = dt.datetime.now(UTC)
    run = run_target(base_config(server, bucket, object_key_path="out", **settings), text)
    end = dt.datetime.now(UTC)
    assert run.returncode == 0, run.stderr
    return run, start, end


def rows_of(server, bucket, stream):
    rows = []
    for key in list_keys(server, bucket, f"out/{stream}/"):
        rows += read_parquet(server, bucket, key).to_pylist()
    return rows


def check_rows(rows, start, end):
    """The checks every reader's rows must pass, whatever read them (datetimes with a
    time zone, integers)."""
    assert sorted(r["n"] for r in rows) == list(range(7))
    for row in rows:
        extracted, deleted, version = EXPECTED[row["n"]]
        assert row["_sdc_extracted_at"] == at(extracted), row
        assert row["_sdc_deleted_at"] == at(deleted), row
        assert row["_sdc_table_version"] == version, row
        assert start <= row["_sdc_received_at"] <= row["_sdc_batched_at"] <= end, (start, row, end)
    in_input_order = [r["_sdc_sequence"] for r in sorted(rows, key=lambda r: r["n"])]
    assert all(a < b for a, b in zip(in_input_order, in_input_order[1:])), in_input_order
    received = [r["_sdc_received_at"] for r in sorted(rows, key=lambda r: r["n"])]
    assert received == sorted(received)


def test_parquet_columns_types_and_values_by_pyarrow(server, bucket):
    run, start, end = load(server, bucket)
    assert run.states == [{"bookmarks": {"a": 3}}]
    rows = []
    for stream in ("a", "b"):
        [key] = list_keys(server, bucket, f"out/{stream}/")
        table = read_parquet(server, bucket, key)
        assert table.schema.names == ["n", "name"] + METADATA
        types = {f.name: str(f.type) for f in table.schema}
        for name in TIMESTAMPS:
            assert types[name] == "timestamp[us, tz=UTC]", types
        assert types["_sdc_sequence"] == types["_sdc_table_version"] == "int64"
        assert table.column("_sdc_received_at").null_count == 0
        assert table.column("_sdc_sequence").null_count == 0
        rows += table.to_pylist()
    check_rows(rows, start, end)
    # One chunk per stream here, so every row of a stream shares its _sdc_batched_at.
    for numbers in ({0, 2, 3, 5}, {1, 4, 6}):
        assert len({r["_sdc_batched_at"] for r in rows if r["n"] in numbers}) == 1


def test_parquet_read_by_duckdb(server, bucket, tmp_path):
    _, start, end = load(server, bucket)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = []
    for stream in ("a", "b"):
        [key] = list_keys(server, bucket, f"out/{stream}/")
        path = tmp_path / f"{stream}.parquet"
        path.write_bytes(get_bytes(server, bucket, key))
        described = {name: kind for name, kind, *_ in con.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()}
        for name in TIMESTAMPS:
            assert described[name] == "TIMESTAMP WITH TIME ZONE", described
        assert described["_sdc_sequence"] == described["_sdc_table_version"] == "BIGINT"
        result = con.sql(f"SELECT * FROM read_parquet('{path}')")
        rows += [dict(zip(result.columns, values)) for values in result.fetchall()]
    check_rows(rows, start, end)


def test_csv_header_and_values_by_python_csv(server, bucket):
    _, start, end = load(server, bucket, file_type="csv")
    rows = []
    for stream in ("a", "b"):
        [key] = list_keys(server, bucket, f"out/{stream}/")
        header, *lines = read_csv(server, bucket, key)
        assert header == ["n", "name"] + METADATA
        for line in lines:
            row = dict(zip(header, line))
            for name in TIMESTAMPS:
                text = row[name]
                assert text == "" or text.endswith("Z"), (name, text)
                row[name] = dt.datetime.fromisoformat(text) if text else None
            for name in ("n", "_sdc_sequence", "_sdc_table_version"):
                row[name] = int(row[name]) if row[name] else None
            rows.append(row)
    check_rows(rows, start, end)


def test_batched_at_is_one_value_per_chunk(server, bucket):
    many = [schema("s", OWN)] + [record("s", {"n": i, "name": "v" * 200}) for i in range(3000)]
    text = "\n".join(json.dumps(m) for m in many) + "\n"
    _, start, end = load(server, bucket, text, row_group_bytes=65536)
    [key] = list_keys(server, bucket, "out/s/")
    parquet = pq.ParquetFile(io.BytesIO(get_bytes(server, bucket, key)))
    assert parquet.num_row_groups > 3
    previous = None
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group)
        [batched] = set(table.column("_sdc_batched_at").to_pylist())
        received = table.column("_sdc_received_at").to_pylist()
        assert max(received) <= batched <= end
        assert previous is None or previous <= min(received)
        previous = batched
    sequence = parquet.read().column("_sdc_sequence").to_pylist()
    assert all(a < b for a, b in zip(sequence, sequence[1:]))


def test_a_later_run_has_larger_sequences(server, bucket):
    load(server, bucket)
    first = max(r["_sdc_sequence"] for r in rows_of(server, bucket, "a"))
    run = run_target(base_config(server, bucket, object_key_path="again", add_metadata_columns=True), TEXT)
    assert run.returncode == 0, run.stderr
    [key, *_] = list_keys(server, bucket, "again/a/")
    assert min(read_parquet(server, bucket, key).column("_sdc_sequence").to_pylist()) > first


def test_schema_properties_named_like_metadata_are_not_duplicated(server, bucket):
    declared = {"n": {"type": "integer"},
                "_sdc_deleted_at": {"type": ["null", "string"], "format": "date-time"},
                "_sdc_sequence": {"type": ["null", "integer"]},
                "_sdc_extracted_at": {"type": ["null", "string"]},
                "name": {"type": "string"}}
    text = "\n".join(json.dumps(m) for m in [
        schema("s", declared),
        record("s", {"n": 1, "name": "x", "_sdc_deleted_at": "2024-05-01T00:00:00Z",
                     "_sdc_sequence": 5, "_sdc_extracted_at": "not kept"},
               time_extracted="2024-04-01T00:00:00Z"),
    ]) + "\n"
    run, _, _ = load(server, bucket, text, unknown_fields="fail")
    for name in ("_sdc_sequence", "_sdc_extracted_at"):
        assert f'property "{name}" is replaced by the metadata column' in run.stderr
    assert "_sdc_deleted_at\" is replaced" not in run.stderr
    [key] = list_keys(server, bucket, "out/s/")
    table = read_parquet(server, bucket, key)
    assert table.schema.names == ["n", "name"] + METADATA
    assert str(table.schema.field("_sdc_extracted_at").type) == "timestamp[us, tz=UTC]"
    [row] = table.to_pylist()
    assert row["_sdc_deleted_at"] == at("2024-05-01T00:00:00+00:00")
    assert row["_sdc_extracted_at"] == at("2024-04-01T00:00:00+00:00")
    assert row["_sdc_sequence"] > 10**18


def test_unit_and_header_case_apply(server, bucket):
    text = "\n".join(json.dumps(m) for m in [
        schema("s", OWN), record("s", {"n": 1}, time_extracted="2024-03-01T12:00:00.250Z")]) + "\n"
    load(server, bucket, text, timestamp_unit="ms", column_header_format="upper")
    [key] = list_keys(server, bucket, "out/s/")
    table = read_parquet(server, bucket, key)
    assert table.schema.names == ["N", "NAME"] + [m.upper() for m in METADATA]
    assert str(table.schema.field("_SDC_RECEIVED_AT").type) == "timestamp[ms, tz=UTC]"
    assert table.column("_SDC_EXTRACTED_AT").to_pylist() == [at("2024-03-01T12:00:00.250+00:00")]


def test_time_extracted_that_is_not_a_date_time_makes_the_record_invalid(server, bucket):
    text = "\n".join(json.dumps(m) for m in [
        schema("s", OWN),
        record("s", {"n": 1}),
        record("s", {"n": 2}, time_extracted="last tuesday"),
        record("s", {"n": 3}, time_extracted=17),
    ]) + "\n"
    config = base_config(server, bucket, object_key_path="out", add_metadata_columns=True)
    run = run_target(config, text)
    assert run.returncode != 0
    assert 'input line 3, stream "s": "time_extracted": expected an RFC 3339 date-time' in run.stderr
    assert '"last tuesday"' in run.stderr
    run = run_target({**config, "invalid_records": "skip", "object_key_path": "skip"}, text)
    assert run.returncode == 0, run.stderr
    [key] = list_keys(server, bucket, "skip/s/")
    assert read_parquet(server, bucket, key).column("n").to_pylist() == [1]
    assert "the number 17" in run.stderr
    # With the setting off, time_extracted is not looked at.
    off = run_target({**config, "add_metadata_columns": False, "object_key_path": "off"}, text)
    assert off.returncode == 0, off.stderr


@pytest.mark.parametrize("file_type", ["parquet", "csv"])
def test_setting_off_adds_nothing(server, bucket, file_type):
    declared = {"n": {"type": "integer"}, "_sdc_deleted_at": {"type": ["null", "string"]},
                "name": {"type": ["null", "string"]}}
    text = "\n".join(json.dumps(m) for m in [
        schema("s", declared),
        record("s", {"n": 1, "_sdc_deleted_at": "gone"}, time_extracted="2024-03-01T12:00:00Z", version=3),
    ]) + "\n"
    load(server, bucket, text, file_type=file_type, add_metadata_columns=False)
    [key] = list_keys(server, bucket, "out/s/")
    if file_type == "csv":
        assert get_bytes(server, bucket, key) == b'n,_sdc_deleted_at,name\r\n1,gone,\r\n'
    else:
        table = read_parquet(server, bucket, key)
        assert table.schema.names == ["n", "_sdc_deleted_at", "name"]
        assert str(table.schema.field("_sdc_deleted_at").type) == "string"
