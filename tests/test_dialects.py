"""What real taps send: every stream in a folder of its own (and overwrite sparing the
others), the dialects of JSON and dates that taps write, JSON Schema as taps write it,
and refusals that name their real cause. Objects are read back with pyarrow and
DuckDB; values, folders and STATE lines are checked."""

import datetime as dt
import json
import math
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness import base_config, get_bytes, list_keys, load, run_target, table_name

UTC = dt.timezone.utc


def lines(*messages) -> str:
    return "".join((m if isinstance(m, str) else json.dumps(m, ensure_ascii=False)) + "\n" for m in messages)


def schema(stream, properties, keys=(), **extra):
    body = {"type": "object", "properties": properties, **extra}
    return {"type": "SCHEMA", "stream": stream, "schema": body, "key_properties": list(keys)}


def record(stream, value, **extra):
    return {"type": "RECORD", "stream": stream, "record": value, **extra}


def state(n):
    return {"type": "STATE", "value": {"bookmarks": {"n": n}}}


def data_keys(server, bucket, folder):
    return [k for k in list_keys(server, bucket, folder) if not k[len(folder):].startswith("_")]


def table(server, bucket, folder):
    """Every data object under `folder`, as one pyarrow table (rows in key order). DuckDB
    reads the same objects and must find the same columns and rows."""
    keys = data_keys(server, bucket, folder)
    assert keys, f"no objects under {folder}"
    blobs = [get_bytes(server, bucket, k) for k in keys]
    result = pa.concat_tables([pq.read_table(pa.BufferReader(b)) for b in blobs])
    with tempfile.TemporaryDirectory() as folder_copy:
        paths = []
        for i, blob in enumerate(blobs):
            path = Path(folder_copy) / f"{i}.parquet"
            path.write_bytes(blob)
            paths.append(str(path))
        relation = duckdb.connect().sql(f"SELECT * FROM read_parquet({paths!r})")
        assert relation.columns == result.schema.names
        assert len(relation.fetchall()) == result.num_rows
    return result


def duck(server, bucket, folder, tmp_path, query="SELECT * FROM t"):
    """The same objects read by DuckDB, from files written out of the bucket."""
    paths = []
    for i, key in enumerate(data_keys(server, bucket, folder)):
        path = tmp_path / f"{abs(hash(folder))}-{i}.parquet"
        path.write_bytes(get_bytes(server, bucket, key))
        paths.append(str(path))
    con = duckdb.connect()
    con.sql(f"CREATE VIEW t AS SELECT * FROM read_parquet({paths!r})")
    return con.sql(query).fetchall()


def rejected(server, bucket, folder):
    keys = [k for k in list_keys(server, bucket, folder) if "/_rejected/" in k]
    out = []
    for key in keys:
        out += [json.loads(line) for line in get_bytes(server, bucket, key).decode().splitlines()]
    return out


# ---- every stream its own folder ----

NAMES = ["Продажи", "Клиенты", "a/b", "a_b", "é", "ü", "public-orders"]


def test_every_stream_gets_its_own_folder(server, bucket, tmp_path):
    text = lines(
        *[schema(n, {"id": {"type": "integer"}, "name": {"type": "string"}}) for n in NAMES],
        *[record(n, {"id": i, "name": n}) for i, n in enumerate(NAMES)],
        state(1),
    )
    run = load(server, bucket, text, prefix="p")
    assert run.states == [{"bookmarks": {"n": 1}}]
    folders = {k.split("/")[1] for k in list_keys(server, bucket, "p/")}
    assert folders == {table_name(n) for n in NAMES} == {
        "Продажи", "Клиенты", "a%2Fb", "a_b", "é", "ü", "public-orders"}
    for i, name in enumerate(NAMES):
        folder = f"p/{table_name(name)}/"
        assert table(server, bucket, folder).to_pylist() == [{"id": i, "name": name}]
        assert duck(server, bucket, folder, tmp_path) == [(i, name)]


def test_overwrite_never_deletes_another_streams_objects(server, bucket, tmp_path):
    columns = {"id": {"type": "integer"}}
    first = lines(schema("Продажи", columns), schema("Клиенты", columns),
                  record("Продажи", {"id": 1}), record("Клиенты", {"id": 2}), state(1))
    load(server, bucket, first, prefix="p", load_method="overwrite")
    clients_before = list_keys(server, bucket, "p/Клиенты/")
    second = lines(schema("Продажи", columns), record("Продажи", {"id": 3}), state(2))
    run = load(server, bucket, second, prefix="p", load_method="overwrite")
    assert run.states == [{"bookmarks": {"n": 2}}]
    assert "1 older object deleted" in run.stderr
    assert list_keys(server, bucket, "p/Клиенты/") == clients_before
    assert table(server, bucket, "p/Клиенты/").to_pylist() == [{"id": 2}]
    assert table(server, bucket, "p/Продажи/").to_pylist() == [{"id": 3}]
    assert duck(server, bucket, "p/Продажи/", tmp_path) == [(3,)]


def test_streams_that_would_still_share_a_folder_stop_the_run(server, bucket):
    columns = {"id": {"type": "integer"}}
    text = lines(schema("_", columns), record("_", {"id": 1}), state(1),
                 schema("", columns), record("", {"id": 2}))
    run = run_target(base_config(server, bucket, object_key_path="p"), text)
    assert run.returncode != 0
    assert 'input line 4' in run.stderr
    assert 'streams "_" and "" would share the folder "_"' in run.stderr
    # What came before is stored and its STATE written.
    assert run.states == [{"bookmarks": {"n": 1}}]
    # The `table` setting puts streams in one folder on purpose.
    run = run_target(base_config(server, bucket, object_key_path="q", table="all"), text)
    assert run.returncode == 0, run.stderr
    assert sorted(table(server, bucket, "q/all/").column("id").to_pylist()) == [1, 2]


# ---- dialects of dates, times and JSON ----

def test_date_time_offsets_taps_send(server, bucket, tmp_path):
    sent = {
        1: "2024-01-01T10:00:00+0000",      # Jira, Salesforce
        2: "2024-01-01T02:00:00-0800",
        3: "2024-01-01T15:00:00+05",
        4: "2024-01-01 10:00:00.123456+00",  # PostgreSQL's text form
        5: "2024-01-01T10:00:00Z",
        6: "2023-12-31T24:00:00Z",
    }
    text = lines(
        schema("s", {"id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}),
        *[record("s", {"id": i, "at": v}, time_extracted="2024-02-02T12:00:00+0100")
          for i, v in sent.items()],
        state(1),
    )
    run = load(server, bucket, text, prefix="p", add_metadata_columns=True)
    assert run.states == [{"bookmarks": {"n": 1}}]
    ten = dt.datetime(2024, 1, 1, 10, tzinfo=UTC)
    want = {1: ten, 2: ten, 3: ten, 4: ten.replace(microsecond=123456), 5: ten,
            6: dt.datetime(2024, 1, 1, tzinfo=UTC)}
    t = table(server, bucket, "p/s/")
    assert {r["id"]: r["at"] for r in t.to_pylist()} == want
    extracted = dt.datetime(2024, 2, 2, 11, tzinfo=UTC)
    assert set(t.column("_sdc_extracted_at").to_pylist()) == {extracted}
    rows = duck(server, bucket, "p/s/", tmp_path,
                'SELECT id, epoch_us("at") FROM t ORDER BY id')
    assert rows == [(i, int(want[i].timestamp() * 1_000_000)) for i in sorted(want)]


def test_times_with_zones_become_utc_and_the_end_of_day_is_refused(server, bucket, tmp_path):
    sent = {1: "10:00:00Z", 2: "10:00:00+05:00", 3: "10:00:00.5+0530", 4: "02:00:00+05",
            5: "12:34:56", 6: "23:59:60", 7: "24:00:00", 8: "10:00:00.123456789"}
    text = lines(schema("s", {"id": {"type": "integer"}, "t": {"type": "string", "format": "time"}}),
                 *[record("s", {"id": i, "t": v}) for i, v in sent.items()], state(1))
    # Arrow's TIME type, to read the values as times of day.
    run = load(server, bucket, text, prefix="p", invalid_records="quarantine", parquet_compatibility="arrow")
    assert run.states == [{"bookmarks": {"n": 1}}]
    t = table(server, bucket, "p/s/")
    assert {r["id"]: r["t"] for r in t.to_pylist()} == {
        1: dt.time(10), 2: dt.time(5), 3: dt.time(4, 30, 0, 500000), 4: dt.time(21),
        5: dt.time(12, 34, 56)}
    assert duck(server, bucket, "p/s/", tmp_path, "SELECT id, t::VARCHAR FROM t ORDER BY id") == [
        (1, "10:00:00"), (2, "05:00:00"), (3, "04:30:00.5"), (4, "21:00:00"), (5, "12:34:56")]
    reasons = {r["message"]["record"]["id"]: r["reason"] for r in rejected(server, bucket, "p/s/")}
    assert set(reasons) == {6, 7, 8}
    for i in (6, 7):
        assert "not a time of day" in reasons[i] and "24:00:00 and leap seconds are refused alike" in reasons[i]
    assert "a time column holds microseconds" in reasons[8]
    assert "timestamp_unit" not in reasons[8]


PYTHON_FLOATS = [float("nan"), float("inf"), float("-inf"), 1.5]


def test_nan_and_infinity_as_python_writes_them(server, bucket, tmp_path):
    props = {"id": {"type": "integer"}, "f": {"type": ["number", "null"]},
             "l": {"type": "array", "items": {"type": "number"}},
             "o": {"type": "object", "properties": {"g": {"type": "number"}}},
             "i": {"type": ["integer", "null"]}, "s": {"type": ["string", "null"]}, "j": {}}
    # json.dumps writes NaN, Infinity and -Infinity by default.
    good = [json.dumps(record("s", {"id": n, "f": v, "l": PYTHON_FLOATS, "o": {"g": v}}))
            for n, v in enumerate(PYTHON_FLOATS)]
    bad = [json.dumps(record("s", {"id": 10, "i": float("nan")})),
           json.dumps(record("s", {"id": 11, "s": float("inf")})),
           json.dumps(record("s", {"id": 12, "j": [1, float("-inf")]}))]
    text = lines(schema("s", props), *good, state(1), *bad, state(2))
    run = load(server, bucket, text, prefix="p", invalid_records="quarantine")
    assert run.states[-1] == {"bookmarks": {"n": 2}}
    rows = table(server, bucket, "p/s/").to_pylist()
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    assert math.isnan(rows[0]["f"]) and rows[1]["f"] == math.inf and rows[2]["f"] == -math.inf
    assert rows[3]["f"] == 1.5 and rows[1]["o"] == {"g": math.inf}
    assert str(rows[0]["l"]) == "[nan, inf, -inf, 1.5]"
    got = duck(server, bucket, "p/s/", tmp_path,
               "SELECT id, isnan(f), f = 'inf'::DOUBLE, f = '-inf'::DOUBLE FROM t ORDER BY id")
    assert got == [(0, True, False, False), (1, False, True, False),
                   (2, False, False, True), (3, False, False, False)]
    reasons = {r["line"]: r["reason"] for r in rejected(server, bucket, "p/s/")}
    assert reasons == {
        7: 'field "i": expected an integer within int64, got NaN (only float columns take NaN and Infinity)',
        8: 'field "s": expected a string, got Infinity (only float columns take NaN and Infinity)',
        9: 'field "j": expected any JSON value, got a value holding -Infinity, which JSON text cannot hold',
    }


def test_nan_renders_as_python_reads_it_in_csv_and_jsonl(server, bucket):
    text = lines(schema("s", {"f": {"type": "number"}}),
                 *[json.dumps(record("s", {"f": v})) for v in PYTHON_FLOATS])
    load(server, bucket, text, prefix="c", file_type="csv")
    [key] = list_keys(server, bucket, "c/")
    assert get_bytes(server, bucket, key).decode().split("\r\n")[:-1] == ["f", "NaN", "Infinity", "-Infinity", "1.5"]
    load(server, bucket, text, prefix="j", file_type="jsonl")
    [key] = list_keys(server, bucket, "j/")
    back = [json.loads(line)["f"] for line in get_bytes(server, bucket, key).decode().splitlines()]
    assert str(back) == "[nan, inf, -inf, 1.5]"


def test_lone_surrogates_are_invalid_records_or_replaced(server, bucket, tmp_path):
    # A JavaScript string cut between the halves of an emoji, as a tap escapes it.
    props = {"id": {"type": "integer"}, "s": {"type": "string"}}
    text = lines(schema("s", props),
                 '{"type":"RECORD","stream":"s","record":{"id":1,"s":"ok \\ud83d\\ude00"}}',
                 '{"type":"RECORD","stream":"s","record":{"id":2,"s":"cut \\ud83d"}}',
                 '{"type":"RECORD","stream":"s","record":{"id":3,"s":"cut \\ude00 here"}}',
                 state(1))
    run = load(server, bucket, text, prefix="p", invalid_records="quarantine")
    assert run.states == [{"bookmarks": {"n": 1}}]
    assert table(server, bucket, "p/s/").to_pylist() == [{"id": 1, "s": "ok 😀"}]
    reasons = {r["line"]: r["reason"] for r in rejected(server, bucket, "p/s/")}
    assert "a lone leading surrogate escape (no trailing surrogate after it)" in reasons[3]
    assert 'field "s" holds \\ude00, a lone trailing surrogate escape' in reasons[4]
    run = load(server, bucket, text, prefix="q", lone_surrogates="replace")
    assert run.states == [{"bookmarks": {"n": 1}}]
    assert duck(server, bucket, "q/s/", tmp_path, "SELECT id, s FROM t ORDER BY id") == [
        (1, "ok 😀"), (2, "cut \ufffd"), (3, "cut \ufffd here")]


def test_a_byte_order_mark_opening_the_input_is_skipped(server, bucket):
    text = "\ufeff" + lines(schema("s", {"id": {"type": "integer"}}), record("s", {"id": 1}), state(1))
    run = load(server, bucket, text, prefix="p")
    assert run.states == [{"bookmarks": {"n": 1}}]
    assert table(server, bucket, "p/s/").to_pylist() == [{"id": 1}]


def test_a_null_key_is_an_invalid_record(server, bucket):
    text = lines(schema("s", {"id": {"type": ["integer", "null"]}}, keys=["id"]),
                 record("s", {"id": None}), record("s", {"id": 2}), state(1))
    run = load(server, bucket, text, prefix="p", invalid_records="quarantine")
    assert run.states == [{"bookmarks": {"n": 1}}]
    assert table(server, bucket, "p/s/").to_pylist() == [{"id": 2}]
    [entry] = rejected(server, bucket, "p/s/")
    assert entry["line"] == 2 and 'key property "id"' in entry["reason"]


# ---- refusals name their real cause ----

REFUSALS = [
    ("bom", "\ufeff" + json.dumps(state(9)), None,
     "the line starts with a byte order mark (U+FEFF)"),
    ("nan_in_state", '{"type":"STATE","value":{"x":NaN}}', None,
     'field "value.x": NaN is not JSON'),
    ("surrogate_in_stream", '{"type":"RECORD","stream":"s\\udc00","record":{}}', None,
     'field "stream" holds \\udc00, a lone trailing surrogate escape (no leading surrogate before it)'),
    ("stream_not_a_string", '{"type":"RECORD","stream":7,"record":{}}', None,
     '"stream" must be a string, got the number 7'),
    ("type_not_a_string", '{"type":["RECORD"],"stream":"s","record":{}}', None,
     '"type" must be a string, got an array'),
    ("null_record", '{"type":"RECORD","stream":"s","record":null}', "s",
     "the record is null; expected an object"),
    ("float_version", '{"type":"RECORD","stream":"s","record":{"id":1},"version":1.5}', "s",
     '"version" must be a whole number (or null), got the number 1.5'),
    ("string_keys", '{"type":"SCHEMA","stream":"s","schema":{"properties":{}},"key_properties":"id"}', "s",
     '"key_properties" must be an array of strings (or null), got the string "id"'),
    ("nanosecond_time", '{"type":"RECORD","stream":"s","record":{"t":"10:00:00.123456789"}}', "s",
     'field "t": expected a time string HH:MM:SS[.ffffff], got the string "10:00:00.123456789" (digits below a microsecond would be lost (a time column holds microseconds); set "column_types": {"s": {"t": "string"}} to keep them as text)'),
]


@pytest.mark.parametrize("line,stream,message", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_each_refusal_names_its_cause(server, bucket, line, stream, message):
    head = lines(schema("s", {"id": {"type": "integer"}, "t": {"type": "string", "format": "time"}}),
                 record("s", {"id": 1}), state(1))
    run = run_target(base_config(server, bucket, object_key_path="p"), head + line + "\n")
    assert run.returncode != 0
    [error] = [l for l in run.stderr.splitlines() if "input line 4" in l]
    where = f'input line 4, stream "{stream}": ' if stream else "input line 4"
    assert where in error and message in error, error
    assert "not a JSON object" not in error
    assert run.states == [{"bookmarks": {"n": 1}}]
    assert table(server, bucket, "p/s/").to_pylist() == [{"id": 1, "t": None}]


# ---- JSON Schema as taps write it ----

def test_local_refs_and_all_of_are_resolved(server, bucket, tmp_path):
    body = {
        "type": "object",
        "definitions": {
            "address": {"type": "object", "properties": {"city": {"type": "string"}, "home": {"type": "integer"}}},
            # pipelinewise-tap-postgres sends arrays like this.
            "sdc_recursive_integer_array": {"type": ["null", "integer", "array"],
                                            "items": {"$ref": "#/definitions/sdc_recursive_integer_array"}},
        },
        "$defs": {"stamp": {"type": "string", "format": "date-time"}},
        "properties": {
            "id": {"type": "integer"},
            "addr": {"$ref": "#/definitions/address"},
            "at": {"allOf": [{"type": ["string", "null"]}, {"format": "date-time"}]},
            "seen": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/stamp"}]},
            "ints": {"$ref": "#/definitions/sdc_recursive_integer_array"},
        },
    }
    text = lines({"type": "SCHEMA", "stream": "s", "schema": body, "key_properties": ["id"]},
                 record("s", {"id": 1, "addr": {"city": "Oslo", "home": 17}, "at": "2024-01-01T00:00:00Z",
                              "seen": "2024-01-02T03:04:05+0000", "ints": [1, [2, 3]]}),
                 record("s", {"id": 2, "addr": {"city": "Rome", "home": "17"}}),
                 state(1))
    run = load(server, bucket, text, prefix="p", invalid_records="quarantine")
    assert run.states == [{"bookmarks": {"n": 1}}]
    assert run.stderr.count("refers to itself (a recursive schema)") == 1
    t = table(server, bucket, "p/s/")
    assert str(t.schema.field("addr").type) == "struct<city: string, home: int64>"
    assert str(t.schema.field("at").type) == "timestamp[us, tz=UTC]"
    assert str(t.schema.field("seen").type) == "timestamp[us, tz=UTC]"
    [row] = t.to_pylist()
    assert row["addr"] == {"city": "Oslo", "home": 17}
    assert row["at"] == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert json.loads(row["ints"]) == [1, [2, 3]]
    assert duck(server, bucket, "p/s/", tmp_path, "SELECT addr.home, epoch(\"at\") FROM t") == [(17, 1704067200.0)]
    [entry] = rejected(server, bucket, "p/s/")
    assert 'field "addr.home": expected an integer within int64, got the string "17"' in entry["reason"]


def test_additional_properties_keep_undeclared_fields(server, bucket, tmp_path):
    props = {"id": {"type": "integer"},
             "o": {"type": "object", "additionalProperties": True, "properties": {"k": {"type": "integer"}}},
             "closed": {"type": "object", "properties": {"k": {"type": "integer"}}}}
    text = lines(schema("s", props, additionalProperties=True),
                 record("s", {"id": 1, "o": {"k": 1, "y": "kept"}, "closed": {"k": 2, "dropped": 1},
                              "more": {"deep": [1, 2]}}),
                 record("s", {"id": 2}),
                 state(1))
    run = load(server, bucket, text, prefix="p")
    assert run.states == [{"bookmarks": {"n": 1}}]
    assert 'field "closed.dropped" is not in the schema; ignored' in run.stderr
    assert "more" not in run.stderr
    t = table(server, bucket, "p/s/")
    assert t.schema.names == ["id", "o", "closed", "_sdc_extra"]
    rows = t.to_pylist()
    assert json.loads(rows[0]["_sdc_extra"]) == {"more": {"deep": [1, 2]}}
    assert json.loads(rows[0]["o"]["_sdc_extra"]) == {"y": "kept"}
    assert rows[1]["_sdc_extra"] is None
    got = duck(server, bucket, "p/s/", tmp_path,
               "SELECT id, json_extract(_sdc_extra, '$.more.deep[1]')::INT FROM t ORDER BY id")
    assert got == [(1, 2), (2, None)]
    # With metadata columns, `_sdc_extra` stays the last of the stream's own.
    load(server, bucket, text, prefix="m", add_metadata_columns=True)
    t = table(server, bucket, "m/s/")
    assert t.schema.names[:5] == ["id", "o", "closed", "_sdc_extra", "_sdc_extracted_at"]
    assert json.loads(t.to_pylist()[0]["_sdc_extra"]) == {"more": {"deep": [1, 2]}}
    # JSONL puts the kept fields back into the object.
    load(server, bucket, text, prefix="j", file_type="jsonl")
    [key] = list_keys(server, bucket, "j/")
    back = [json.loads(line) for line in get_bytes(server, bucket, key).decode().splitlines()]
    assert back[0] == {"id": 1, "o": {"k": 1, "y": "kept"}, "closed": {"k": 2}, "more": {"deep": [1, 2]}}


def test_a_schema_without_properties_keeps_each_record_whole(server, bucket, tmp_path):
    # singer-io tap-mongodb and tap-dynamodb send {"type": "object"}.
    sent = [{"_id": "65a1", "n": {"x": [1, 2.5]}, "s": "é \"q\""}, {"_id": "65a2", "tags": []}]
    text = lines({"type": "SCHEMA", "stream": "docs", "schema": {"type": "object"}, "key_properties": ["_id"]},
                 *[record("docs", r) for r in sent], state(1))
    load(server, bucket, text, prefix="p")
    t = table(server, bucket, "p/docs/")
    assert t.schema.names == ["_sdc_extra"]
    assert [json.loads(v) for v in t.column("_sdc_extra").to_pylist()] == sent
    assert duck(server, bucket, "p/docs/", tmp_path,
                "SELECT _sdc_extra->>'_id' FROM t ORDER BY 1") == [("65a1",), ("65a2",)]
    run = load(server, bucket, text, prefix="j", file_type="jsonl")
    assert run.states == [{"bookmarks": {"n": 1}}]
    [key] = list_keys(server, bucket, "j/")
    assert [json.loads(l) for l in get_bytes(server, bucket, key).decode().splitlines()] == sent
    load(server, bucket, text, prefix="c", file_type="csv")
    [key] = list_keys(server, bucket, "c/")
    import csv, io
    rows = list(csv.reader(io.StringIO(get_bytes(server, bucket, key).decode(), newline="")))
    assert rows[0] == ["_sdc_extra"] and [json.loads(r[0]) for r in rows[1:]] == sent
