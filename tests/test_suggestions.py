"""Messages that fix themselves: where a refusal suggests a setting, the suggestion is
JSON to paste into the config, for the stream and column at hand, with a type that holds
the value refused. Each test pastes the snippet the message gives into the config and
runs the same input again: it must load, with the value kept exactly."""

import json
import re
from decimal import Decimal

import pytest

from harness import base_config, list_keys, read_parquet, run_target

BIG = "1000000000000000000000000000001"  # 31 digits: a database NUMERIC sent as a number


def singer(stream, properties, values) -> str:
    out = [{"type": "SCHEMA", "stream": stream, "schema": {"properties": properties}, "key_properties": []}]
    out += [{"type": "RECORD", "stream": stream, "record": {"v": "VALUE"}} for _ in values]
    text = [json.dumps(m) for m in out]
    # The values go in as raw JSON text, so no Python float ever touches them.
    for i, value in enumerate(values, start=1):
        text[i] = text[i].replace('"VALUE"', value)
    return "\n".join(text) + "\n"


def pasted(stderr: str) -> dict:
    """The `"column_types": {...}` snippet of the error line, as a config would hold it."""
    last = stderr.strip().splitlines()[-1]
    found = re.search(r'set ("column_types": \{.*?\}\})', last)
    assert found, last
    return json.loads("{" + found.group(1) + "}")


@pytest.mark.parametrize("ty,value,expected", [
    ({"type": "number"}, BIG, "decimal(38,0)"),
    ({"type": "number"}, "12345678901234567.891", "decimal(38,3)"),
    ({"type": "integer"}, "18446744073709551616", "decimal(38,0)"),
    ({"type": "number"}, "1" + "0" * 49 + "1", "decimal(51,0)"),
])
def test_the_suggested_column_type_loads_the_value(server, bucket, ty, value, expected):
    text = singer("public-orders", {"v": ty}, [value])
    config = base_config(server, bucket, object_key_path="fix")
    run = run_target(config, text)
    assert run.returncode != 0
    snippet = pasted(run.stderr)
    assert snippet == {"column_types": {"public-orders": {"v": expected}}}
    run = run_target({**config, **snippet}, text)
    assert run.returncode == 0, run.stderr
    [key] = list_keys(server, bucket, "fix/public-orders/")
    got = read_parquet(server, bucket, key).column("v").to_pylist()[0]
    # Portable Parquet stores decimals wider than 38 digits as their text.
    assert Decimal(str(got)) == Decimal(value)


def test_sub_microsecond_time_suggests_text_and_text_keeps_it(server, bucket):
    text = singer("s", {"v": {"type": "string", "format": "time"}}, ['"10:00:00.123456789"'])
    config = base_config(server, bucket, object_key_path="fix")
    run = run_target(config, text)
    assert run.returncode != 0
    snippet = pasted(run.stderr)
    assert snippet == {"column_types": {"s": {"v": "string"}}}
    run = run_target({**config, **snippet}, text)
    assert run.returncode == 0, run.stderr
    [key] = list_keys(server, bucket, "fix/s/")
    assert read_parquet(server, bucket, key).column("v").to_pylist() == ["10:00:00.123456789"]


def test_millisecond_column_suggests_microseconds(server, bucket):
    text = singer("s", {"v": {"type": "string", "format": "date-time"}}, ['"2024-01-01T00:00:00.123456Z"'])
    config = base_config(server, bucket, object_key_path="fix", timestamp_unit="ms")
    run = run_target(config, text)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert 'set "timestamp_unit": "us" to keep them' in last, last
    run = run_target({**config, "timestamp_unit": "us"}, text)
    assert run.returncode == 0, run.stderr
