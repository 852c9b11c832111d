"""Exact types: every value of every type read back equal to what the tap sent, by
pyarrow and DuckDB; CSV rendered as documented; schemas stable across batches; invalid
records failed, skipped or quarantined as configured."""

import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import singer_sdk

from harness import (
    EDGE,
    EDGE_RECORDS,
    EDGE_TEXT,
    FIXTURES,
    base_config,
    compare_rows,
    get_bytes,
    list_keys,
    load,
    only_key,
    parse_json,
    read_parquet,
    run_target,
    sent_value,
    singer_records,
    table_name,
)

SDK_FIXTURES = Path(singer_sdk.__file__).parent / "testing" / "target_test_streams"

EDGE_TYPES = {
    "id": "int64", "i": "int64", "f": "double", "big": "decimal128(38, 0)",
    "dec": "decimal128(38, 10)", "wide": "decimal256(62, 2)", "s": "string", "b": "bool",
    "ts": "timestamp[us, tz=UTC]", "d": "date32[day]", "t": "time64[us]",
    "obj": "struct<a: int64, b: struct<c: string, ts: timestamp[us, tz=UTC]>, l: list<item: double>>",
    "arr": "list<item: string>",
    "deep": "list<item: list<item: struct<x: int64, y: list<item: bool>>>>",
    "any": "extension<arrow.json>", "mixed": "extension<arrow.json>",
}


# parquet_compatibility: portable (the default) stores times and decimals wider than 38
# digits as text, which every engine reads; arrow keeps Arrow's own types.
PORTABLE_TYPES = {**EDGE_TYPES, "wide": "string", "t": "string"}
PROFILES = {"portable": (PORTABLE_TYPES, EDGE_TEXT), "arrow": (EDGE_TYPES, None)}
# What portable files say in their footer: their dates and timestamps are proleptic
# Gregorian, in the forms Hive and Spark 3 look for.
PROLEPTIC = {b"writer.date.proleptic": b"true", b"org.apache.spark.version": b"3.0.0"}


@pytest.mark.parametrize("profile", PROFILES)
def test_edge_values_read_back_equal_by_pyarrow(server, bucket, profile):
    load(server, bucket, EDGE, parquet_compatibility=profile)
    key = only_key(server, bucket, "out/edge/")
    table = read_parquet(server, bucket, key)
    types, text_columns = PROFILES[profile]
    assert {f.name: str(f.type) for f in table.schema} == types
    compare_rows(table, EDGE_RECORDS, text_columns)
    footer = pq.read_metadata(io.BytesIO(get_bytes(server, bucket, key)))
    assert footer.created_by.startswith("target-s3 "), "the writer names itself"
    stated = {k: v for k, v in footer.metadata.items() if k in PROLEPTIC}
    assert stated == (PROLEPTIC if profile == "portable" else {})


@pytest.mark.parametrize("profile", PROFILES)
def test_edge_values_read_back_equal_by_duckdb(server, bucket, tmp_path, profile):
    load(server, bucket, EDGE, parquet_compatibility=profile)
    path = tmp_path / "edge.parquet"
    path.write_bytes(get_bytes(server, bucket, only_key(server, bucket, "out/edge/")))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    result = con.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY id")
    arrow_types = pq.read_schema(path)
    text_columns = PROFILES[profile][1]
    for n, (row, record) in enumerate(zip(result.fetchall(), EDGE_RECORDS, strict=True)):
        for name, got in zip(result.columns, row):
            want = sent_value(record, arrow_types.field(name), text_columns)
            if name in ("any", "mixed"):
                got = None if got is None else parse_json(got)
            if name == "wide" and want is not None and profile == "arrow":
                # DuckDB's DECIMAL stops at 38 digits; it reads wider ones as DOUBLE.
                assert got == float(want), (n, name, got, want)
                continue
            assert got == want, f"row {n}, column {name}: DuckDB read {got!r}, sent {want!r}"


# The columns the compatibility setting is about, and the ones around them.
COMPATIBILITY_COLUMNS = ["big", "dec", "wide", "ts", "d", "t"]


@pytest.mark.parametrize("profile", PROFILES)
def test_polars_and_datafusion_read_the_compatibility_columns(server, bucket, tmp_path, profile):
    """polars cannot open a file holding a decimal wider than 38 digits at all (and DuckDB
    reads one as a double, above): one more reason for portable by default."""
    import datafusion
    import polars

    load(server, bucket, EDGE, parquet_compatibility=profile)
    path = tmp_path / "edge.parquet"
    path.write_bytes(get_bytes(server, bucket, only_key(server, bucket, "out/edge/")))
    schema = pq.read_schema(path)
    want = [[sent_value(r, schema.field(c), PROFILES[profile][1]) for c in COMPATIBILITY_COLUMNS]
            for r in EDGE_RECORDS]
    frame = datafusion.SessionContext().read_parquet(str(path)).sort(datafusion.col("id"))
    rows = frame.select(*COMPATIBILITY_COLUMNS).to_pylist()
    assert [[row[c] for c in COMPATIBILITY_COLUMNS] for row in rows] == want
    if profile == "portable":
        got = polars.read_parquet(path).sort("id").select(COMPATIBILITY_COLUMNS).rows()
        assert [list(row) for row in got] == want
    else:
        with pytest.raises(Exception, match="precision must be between 1 and 38"):
            polars.read_parquet(path)


def test_edge_values_csv_rendering(server, bucket):
    load(server, bucket, EDGE, file_type="csv")
    text = get_bytes(server, bucket, only_key(server, bucket, "out/edge/"))
    assert text == (FIXTURES / "edge_values.csv").read_bytes()


def test_identical_schema_across_batches_even_all_null(server, bucket):
    load(server, bucket, EDGE, max_batch_rows=1)
    keys = list_keys(server, bucket, "out/edge/")
    assert len(keys) == len(EDGE_RECORDS) == 6
    schemas = [read_parquet(server, bucket, k).schema for k in keys]
    assert all(s.equals(schemas[0], check_metadata=True) for s in schemas)
    last = read_parquet(server, bucket, keys[-1])
    assert last.to_pylist()[0]["obj"] is None and last.column("f").null_count == 1


def stream_text(schema_props, records, key=None):
    lines = [json.dumps({"type": "SCHEMA", "stream": "s", "key_properties": key or [],
                         "schema": {"properties": schema_props}})]
    lines += [r if isinstance(r, str) else json.dumps({"type": "RECORD", "stream": "s", "record": r})
              for r in records]
    lines.append(json.dumps({"type": "STATE", "value": {"done": True}}))
    return "\n".join(lines) + "\n"


MIXED = stream_text(
    {"id": {"type": "integer"}, "n": {"type": ["null", "number"]}},
    [{"id": 1, "n": 1.5}, {"id": "two", "n": 2}, {"id": 3, "n": "x"}, {"n": 4}, {"id": 5}],
    key=["id"],
)


def test_invalid_records_fail_by_default(server, bucket):
    run = run_target(base_config(server, bucket), MIXED)
    assert run.returncode != 0
    assert 'input line 3, stream "s": field "id": expected an integer within int64, got the string "two"' in run.stderr
    assert run.stdout == ""


def test_numbers_sent_as_strings_name_the_setting_that_takes_them(server, bucket):
    text = stream_text({"id": {"type": "integer"}, "amount": {"type": "string"}},
                       [{"id": 1, "amount": "19.99"}, {"id": 2, "amount": "5"}], key=["id"])
    config = base_config(server, bucket, column_types={"s": {"amount": "decimal(10,2)"}})
    refused = run_target(config, text)
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert 'field "amount": expected' in last and 'got the string "19.99"' in last, last
    assert '"validate_records": false' in last, last
    taken = run_target({**config, "validate_records": False}, text)
    assert taken.returncode == 0, taken.stderr
    [key] = list_keys(server, bucket)
    assert [str(v) for v in read_parquet(server, bucket, key).column("amount").to_pylist()] == ["19.99", "5.00"]


def test_invalid_records_skip(server, bucket):
    run = load(server, bucket, MIXED, invalid_records="skip")
    assert run.states == [{"done": True}]
    table = read_parquet(server, bucket, only_key(server, bucket, "out/s/"))
    assert table.column("id").to_pylist() == [1, 5]
    assert run.stderr.count("record skipped") == 3
    assert "3 invalid records skipped" in run.stderr


def test_invalid_records_quarantine(server, bucket):
    run = load(server, bucket, MIXED, invalid_records="quarantine")
    assert run.states == [{"done": True}]
    assert read_parquet(server, bucket, only_key(server, bucket, "out/s/2")).column("id").to_pylist() == [1, 5]
    key = only_key(server, bucket, "out/s/_rejected/")
    assert key.endswith(".jsonl")
    rejected = [json.loads(l) for l in get_bytes(server, bucket, key).decode().splitlines()]
    assert [r["line"] for r in rejected] == [3, 4, 5]
    lines = MIXED.splitlines()
    assert [r["message"] for r in rejected] == [json.loads(lines[i - 1]) for i in (3, 4, 5)]
    assert 'field "n": expected a number' in rejected[1]["reason"]
    assert 'key property "id"' in rejected[2]["reason"]
    assert "3 quarantined" in run.stderr


BIG = stream_text({"n": {"type": "number"}}, [{"n": 1}, '{"type": "RECORD", "stream": "s", "record": {"n": 1000000000000000000000000000001}}'])


def test_inexact_numbers_stop_and_name_the_fix(server, bucket):
    run = run_target(base_config(server, bucket), BIG)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    for words in ('input line 3, stream "s"', 'field "n"', "1000000000000000000000000000001",
                  "column_types", "inexact_numbers"):
        assert words in last, last


def test_inexact_numbers_warn_counts(server, bucket):
    run = load(server, bucket, BIG, inexact_numbers="warn")
    assert '1 numbers rounded to the nearest float64' in run.stderr
    assert read_parquet(server, bucket, only_key(server, bucket, "out/s/")).column("n").to_pylist() == [1.0, 1e30]


def test_column_types_keep_big_numbers_exact(server, bucket):
    from decimal import Decimal

    load(server, bucket, BIG, column_types={"s": {"n": "decimal(38,0)"}}, prefix="dec")
    table = read_parquet(server, bucket, only_key(server, bucket, "dec/s/"))
    assert str(table.schema.field("n").type) == "decimal128(38, 0)"
    assert table.column("n").to_pylist() == [Decimal(1), Decimal("1000000000000000000000000000001")]
    load(server, bucket, BIG, column_types={"s": {"n": "string"}}, prefix="str", file_type="csv")
    text = get_bytes(server, bucket, only_key(server, bucket, "str/s/")).decode()
    assert text == "n\r\n1\r\n1000000000000000000000000000001\r\n"


TIMES = stream_text({"ts": {"type": "string", "format": "date-time"}},
                    [{"ts": "2024-01-01T00:00:00.123Z"}, {"ts": "2024-01-01T00:00:00.123456789+00:00"}])


@pytest.mark.parametrize("unit,arrow,ok", [("ms", "timestamp[ms, tz=UTC]", 1), ("us", "timestamp[us, tz=UTC]", 1),
                                           ("ns", "timestamp[ns, tz=UTC]", 2)])
def test_timestamp_units_refuse_digits_below_the_unit(server, bucket, unit, arrow, ok):
    # Nanoseconds only for Arrow readers: Spark 3 cannot read them.
    profile = "arrow" if unit == "ns" else "portable"
    config = base_config(server, bucket, timestamp_unit=unit, invalid_records="skip", parquet_compatibility=profile)
    run = run_target(config, TIMES)
    assert run.returncode == 0, run.stderr
    table = read_parquet(server, bucket, only_key(server, bucket, "exports/run/s/"))
    assert str(table.schema.field("ts").type) == arrow
    assert table.num_rows == ok
    if ok == 1:
        assert "digits below a" in run.stderr and 'timestamp_unit to \\"ns\\"' not in run.stderr
    else:
        assert pa.compute.cast(table.column("ts"), pa.int64()).to_pylist()[1] == 1704067200123456789


def test_nanosecond_range_is_refused_clearly(server, bucket):
    text = stream_text({"ts": {"type": "string", "format": "date-time"}}, [{"ts": "0001-01-01T00:00:00Z"}])
    run = run_target(base_config(server, bucket, timestamp_unit="ns", parquet_compatibility="arrow"), text)
    assert run.returncode != 0 and "1677" in run.stderr and 'timestamp_unit \\"us\\"' not in run.stderr


def test_nanoseconds_in_portable_parquet_are_refused_at_start_naming_both_fixes(server, bucket):
    run = run_target(base_config(server, bucket, timestamp_unit="ns"), TIMES)
    assert run.returncode != 0 and run.stdout == ""
    last = run.stderr.strip().splitlines()[-1]
    assert "timestamp_unit" in last and "Spark 3" in last and "parquet_compatibility" in last, last
    assert list_keys(server, bucket) == []
    assert load(server, bucket, TIMES, file_type="jsonl", timestamp_unit="ns").states == [{"done": True}]


def test_portable_parquet_stores_wide_decimal_overrides_as_exact_text(server, bucket):
    load(server, bucket, BIG, column_types={"s": {"n": "decimal(60,0)"}})
    table = read_parquet(server, bucket, only_key(server, bucket, "out/s/"))
    assert str(table.schema.field("n").type) == "string"
    assert table.column("n").to_pylist() == ["1", "1000000000000000000000000000001"]


def test_validate_records_false_coerces_what_is_exact(server, bucket):
    text = stream_text({"i": {"type": "integer"}, "b": {"type": "boolean"}, "s": {"type": "string"}},
                       ['{"type": "RECORD", "stream": "s", "record": {"i": "42", "b": "true", "s": 12.50}}',
                        {"i": 1, "b": False, "s": {"k": [1]}}])
    load(server, bucket, text, validate_records=False)
    rows = read_parquet(server, bucket, only_key(server, bucket, "out/s/")).to_pylist()
    assert rows == [{"i": 42, "b": True, "s": "12.50"}, {"i": 1, "b": False, "s": '{"k":[1]}'}]


def test_unknown_fields_warn_once_or_fail(server, bucket):
    text = stream_text({"a": {"type": "integer"}}, [{"a": 1, "x": 1}, {"a": 2, "x": 2, "o": {"y": 1}}])
    run = load(server, bucket, text)
    assert run.stderr.count('field "x" is not in the schema') == 1
    assert run.stderr.count('field "o" is not in the schema') == 1
    run = run_target(base_config(server, bucket, unknown_fields="fail"), text)
    assert run.returncode != 0 and 'field "x" is not in the schema' in run.stderr


def test_nan_and_overflow_policy(server, bucket):
    # NaN (as Python writes it) is a float; in an integer column it is named.
    text = stream_text({"f": {"type": "number"}}, ['{"type": "RECORD", "stream": "s", "record": {"f": NaN}}'])
    run = run_target(base_config(server, bucket), text)
    assert run.returncode == 0, run.stderr
    text = stream_text({"f": {"type": "integer"}}, ['{"type": "RECORD", "stream": "s", "record": {"f": NaN}}'])
    run = run_target(base_config(server, bucket), text)
    assert run.returncode != 0 and 'input line 2, stream "s": field "f": expected an integer within int64, got NaN' in run.stderr
    text = stream_text({"f": {"type": "number"}}, ['{"type": "RECORD", "stream": "s", "record": {"f": 1e400}}'])
    run = run_target(base_config(server, bucket), text)
    assert run.returncode != 0 and "beyond the float64 range" in run.stderr


def test_schema_change_starts_new_object_with_its_columns(server, bucket):
    text = (SDK_FIXTURES / "schema_updates.singer").read_text()
    load(server, bucket, text, file_type="csv")
    keys = list_keys(server, bucket, "out/test_schema_updates/")
    headers = [get_bytes(server, bucket, k).decode().split("\r\n")[0] for k in keys]
    assert headers[0] == "id,a1,a2"
    assert headers[1] == "id,a1,a2,a3"
    assert all(h.startswith("id,a1,a2,a3,a4,a5") for h in headers[2:])


VALUE_EQUAL = ["camelcase_complex_schema", "schema_updates", "schema_no_properties",
               "special_chars_in_attributes", "encoded_string_data", "array_data"]


@pytest.mark.parametrize("name", VALUE_EQUAL)
def test_sdk_fixture_reads_back_value_equal(server, bucket, name):
    text = (SDK_FIXTURES / f"{name}.singer").read_text()
    load(server, bucket, text)
    for stream, records in singer_records(text).items():
        keys = list_keys(server, bucket, f"out/{table_name(stream)}/")
        done = 0
        for key in keys:
            table = read_parquet(server, bucket, key)
            compare_rows(table, records[done:done + table.num_rows])
            done += table.num_rows
        assert done == len(records)


def test_special_characters_keep_column_names(server, bucket):
    text = (SDK_FIXTURES / "special_chars_in_attributes.singer").read_text()
    load(server, bucket, text)
    key = only_key(server, bucket, f"out/{table_name('test:SpecialChars!in?attributes')}/")
    schema = read_parquet(server, bucket, key).schema
    assert [f.name for f in schema.field("d").type] == ["env", "agent:type", "agent:os:version"]
