"""The Singer SDK's standard target fixtures, read from the installed singer-sdk package
and piped through target-s3 one by one. Two must fail with a clear message; every
other one must load, with each stream's rows all present in its objects.

The SDK's `invalid_schema` (a SCHEMA `{"type": "object"}` and nothing else) is expected
to fail by the SDK's own suite, whose test says it should raise a better error some day.
Real taps send that schema (singer-io tap-mongodb, tap-dynamodb), so target-s3 takes it
and keeps such a stream's records whole (see README, Types): that fixture loads, with
no records and so no objects."""

import json
from pathlib import Path

import pyarrow as pa
import pytest
import singer_sdk

from harness import base_config, list_keys, read_csv, read_parquet, records_by_stream, run_target, table_name

FIXTURES = Path(singer_sdk.__file__).parent / "testing" / "target_test_streams"
ALL = sorted(p.stem for p in FIXTURES.glob("*.singer"))

FAILING = {
    "record_before_schema": (1, "test_record_before_schema", "RECORD arrived before any SCHEMA"),
    "record_missing_key_property": (2, "test_record_missing_key_property", 'no value for key property "id"'),
}


def test_fixtures_are_installed():
    assert len(ALL) >= 20, f"expected the SDK's fixtures in {FIXTURES}"
    assert set(FAILING) <= set(ALL)


@pytest.mark.parametrize("name", sorted(FAILING))
def test_failing_fixture(server, bucket, name):
    line, stream, words = FAILING[name]
    run = run_target(base_config(server, bucket), (FIXTURES / f"{name}.singer").read_text())
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith(f'target-s3: error: input line {line}, stream "{stream}": '), lines[-1]
    assert words in lines[-1], lines[-1]
    assert "panicked" not in run.stderr
    assert run.stdout == ""


@pytest.mark.parametrize("file_type", ["parquet", "csv"])
@pytest.mark.parametrize("name", [n for n in ALL if n not in FAILING])
def test_loading_fixture(server, bucket, name, file_type):
    text = (FIXTURES / f"{name}.singer").read_text()
    run = run_target(base_config(server, bucket, file_type=file_type), text)
    assert run.returncode == 0, run.stderr
    expected_states = [json.loads(l)["value"] for l in text.splitlines() if l.strip() and json.loads(l)["type"] == "STATE"]
    if expected_states:
        assert run.states[-1] == expected_states[-1]
    for stream, records in records_by_stream(text).items():
        keys = list_keys(server, bucket, f"exports/run/{table_name(stream)}/")
        assert keys, stream
        if file_type == "parquet":
            rows = sum(read_parquet(server, bucket, k).num_rows for k in keys)
        else:
            rows = sum(len(read_csv(server, bucket, k)) - 1 for k in keys)
        assert rows == len(records), (stream, rows, len(records))
