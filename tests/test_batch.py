"""BATCH messages (the Singer SDK's batch mode): records in files named by a manifest.

Batch files here are written as the Singer SDK writes them (gzipped JSONL from its own
JSONLinesBatcher, Parquet through pyarrow), and the objects are compared with those of
the same records sent as RECORD lines. The real tap in batch mode is in test_postgres.py.
"""

import gzip
import io
import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness import BINARY, base_config, list_keys, read_parquet, run_target

SCHEMA = {
    "type": "SCHEMA",
    "stream": "orders",
    "key_properties": ["id"],
    "schema": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["null", "string"]},
            "price": {"type": ["null", "number"]},
            "at": {"type": ["null", "string"], "format": "date-time"},
            "day": {"type": ["null", "string"], "format": "date"},
            "tags": {"type": ["null", "array"], "items": {"type": "string"}},
            "doc": {"type": ["null", "object"], "properties": {"k": {"type": ["null", "integer"]}}},
        },
    },
}


def records(n, start=0):
    return [
        {
            "id": i,
            "name": None if i % 7 == 0 else f"name \"{i}\", ✓",
            "price": None if i % 5 == 0 else i / 4,
            "at": f"2024-03-{1 + i % 28:02d}T10:{i % 60:02d}:00.123456+00:00",
            "day": f"2023-12-{1 + i % 31:02d}",
            "tags": [str(i), "x"] if i % 3 else [],
            "doc": {"k": i} if i % 2 else None,
        }
        for i in range(start, start + n)
    ]


def lines(*messages):
    return "".join(json.dumps(m) + "\n" for m in messages)


def jsonl_gz(path, rows):
    with gzip.open(path, "wb") as f:
        f.writelines((json.dumps(r) + "\n").encode() for r in rows)
    return path


def batch(stream, urls, format="jsonl", compression="gzip"):
    return {"type": "BATCH", "stream": stream, "encoding": {"format": format, "compression": compression},
            "manifest": urls}


def state(n):
    return {"type": "STATE", "value": {"bookmarks": {"orders": {"n": n}}}}


def as_record_lines(rows):
    return [{"type": "RECORD", "stream": "orders", "record": r} for r in rows]


def table_of(server, bucket, prefix):
    keys = [k for k in list_keys(server, bucket, prefix) if "/_rejected/" not in k]
    assert keys, f"no objects under {prefix}"
    tables = [read_parquet(server, bucket, k) for k in keys]
    return pa.concat_tables(tables).sort_by("id")


def test_gzipped_jsonl_batches_equal_record_lines(server, bucket, tmp_path):
    first, second = records(1500), records(1000, start=1500)
    urls = [jsonl_gz(tmp_path / "a b-1.json.gz", first).as_uri(), jsonl_gz(tmp_path / "a b-2.json.gz", second).as_uri()]
    assert "%20" in urls[0], "the SDK's URLs are percent-encoded"
    text = lines(SCHEMA, state(0), batch("orders", urls), state(1))
    run = run_target(base_config(server, bucket, object_key_path="batch"), text)
    assert run.returncode == 0, run.stderr
    assert run.states[-1] == state(1)["value"]
    plain = run_target(base_config(server, bucket, object_key_path="plain"),
                       lines(SCHEMA, state(0), *as_record_lines(first + second), state(1)))
    assert plain.returncode == 0, plain.stderr
    got, want = table_of(server, bucket, "batch/"), table_of(server, bucket, "plain/")
    assert got.schema == want.schema
    assert got.num_rows == 2500
    assert got.equals(want)


def test_parquet_batches_load_the_same_values(server, bucket, tmp_path):
    rows = records(600)
    table = pa.Table.from_pylist(rows)  # as the SDK's ParquetBatcher writes them
    # A real timestamp column (with a zone name, as pyarrow writes it) besides strings.
    import datetime as dt

    stamps = [dt.datetime(2024, 3, 1, 10, i % 60, tzinfo=dt.timezone.utc) for i in range(600)]
    table = table.set_column(table.schema.get_field_index("at"), "at", pa.array(stamps, pa.timestamp("us", "UTC")))
    path = tmp_path / "orders=1.parquet.gz"
    pq.write_table(table, path, compression="gzip")
    text = lines(SCHEMA, batch("orders", [path.as_uri()], format="parquet"), state(1))
    run = run_target(base_config(server, bucket, object_key_path="pq"), text)
    assert run.returncode == 0, run.stderr
    assert run.states == [state(1)["value"]]
    got = table_of(server, bucket, "pq/")
    for row, want in zip(got.to_pylist(), rows):
        assert row["id"] == want["id"] and row["name"] == want["name"] and row["price"] == want["price"]
        assert row["tags"] == want["tags"] and row["day"].isoformat() == want["day"]
        assert row["doc"] == ({"k": want["doc"]["k"]} if want["doc"] else None)
    assert [r["at"] for r in got.to_pylist()] == stamps
    assert got.schema.field("at").type == pa.timestamp("us", "UTC")


def test_parquet_column_of_the_wrong_type_is_refused(server, bucket, tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": 1, "price": None}, {"id": 2, "price": "cheap"}]), path)
    run = run_target(base_config(server, bucket), lines(SCHEMA, batch("orders", [path.as_uri()], "parquet"), state(1)))
    assert run.returncode == 1
    error = run.stderr.strip().splitlines()[-1]
    assert "input line 2" in error and path.as_uri() in error and "line 2" in error and "price" in error, error
    assert run.stdout == ""


def test_batch_files_in_s3_are_read_with_the_targets_credentials(server, bucket, tmp_path):
    rows = records(300)
    body = io.BytesIO()
    with gzip.GzipFile(fileobj=body, mode="wb") as f:
        f.writelines((json.dumps(r) + "\n").encode() for r in rows)
    server.client().put_object(Bucket=bucket, Key="staging/orders-1.json.gz", Body=body.getvalue())
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records(200, start=300)), buffer)
    server.client().put_object(Bucket=bucket, Key="staging/orders-2.parquet", Body=buffer.getvalue())
    text = lines(SCHEMA, batch("orders", [f"s3://{bucket}/staging/orders-1.json.gz"]),
                 batch("orders", [f"s3://{bucket}/staging/orders-2.parquet"], "parquet", "none"), state(9))
    run = run_target(base_config(server, bucket, object_key_path="froms3"), text)
    assert run.returncode == 0, run.stderr
    assert run.states == [state(9)["value"]]
    got = table_of(server, bucket, "froms3/")
    assert got.column("id").to_pylist() == list(range(500))
    missing = run_target(base_config(server, bucket, object_key_path="gone"),
                         lines(SCHEMA, batch("orders", [f"s3://{bucket}/staging/nope.json.gz"]), state(1)))
    assert missing.returncode == 1
    assert f"s3://{bucket}/staging/nope.json.gz" in missing.stderr and missing.stdout == ""


def test_a_missing_file_stops_the_run_before_the_state_after_it(server, bucket, tmp_path):
    good = jsonl_gz(tmp_path / "good.json.gz", records(10)).as_uri()
    gone = (tmp_path / "gone.json.gz").as_uri()
    text = lines(SCHEMA, batch("orders", [good]), state(1), batch("orders", [gone]), state(2))
    run = run_target(base_config(server, bucket), text)
    assert run.returncode == 1
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("target-s3: error: input line 4, stream \"orders\"") and gone in error, error
    assert "No such file" in error, error
    assert run.states == [state(1)["value"]], "the STATE before the missing file is covered; the one after is not"
    assert table_of(server, bucket, "exports/run/").num_rows == 10


@pytest.mark.parametrize("content, declared, expected", [
    (b"not gzip\n", "gzip", "declared gzip-compressed, but it is not gzip"),
    (gzip.compress(b'{"id": 1}\n{"id": 2}\n') + b"garbage", "gzip", "cannot read"),
    (b'{"id": 1}\n{"id": 2, "price": "x"}\n', "none", "line 2"),
    (b'{"id": 1}\n{"id": 2,\n', "none", "line 2"),
    (b'{"id": 1}\n\xff\n', "none", "line 2: not valid UTF-8"),
])
def test_bad_batch_files_are_named_with_the_line_inside(server, bucket, tmp_path, content, declared, expected):
    path = tmp_path / "f.jsonl"
    path.write_bytes(content)
    run = run_target(base_config(server, bucket), lines(SCHEMA, batch("orders", [path.as_uri()], "jsonl", declared), state(1)))
    assert run.returncode == 1, run.stderr
    error = run.stderr.strip().splitlines()[-1]
    assert "input line 2" in error and path.as_uri() in error and expected in error, error
    assert run.stdout == ""


def test_invalid_records_in_batch_files_follow_invalid_records(server, bucket, tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text('{"id": 1}\n{"id": 2, "price": "x"}\n{"name": "no key"}\n{"id": 4}\n')
    text = lines(SCHEMA, batch("orders", [path.as_uri()], "jsonl", "none"), state(1))
    run = run_target(base_config(server, bucket, object_key_path="q", invalid_records="quarantine"), text)
    assert run.returncode == 0, run.stderr
    assert run.states == [state(1)["value"]]
    data = [k for k in list_keys(server, bucket, "q/") if "_rejected" not in k]
    assert pa.concat_tables([read_parquet(server, bucket, k) for k in data]).column("id").to_pylist() == [1, 4]
    [rejected] = [k for k in list_keys(server, bucket, "q/") if "_rejected" in k]
    entries = [json.loads(x) for x in server.client().get_object(Bucket=bucket, Key=rejected)["Body"].read().splitlines()]
    assert [e["message"] for e in entries] == [{"id": 2, "price": "x"}, {"name": "no key"}]
    assert path.as_uri() + ", line 2" in entries[0]["reason"] and ", line 3" in entries[1]["reason"]


def test_the_sdks_undeclared_gzip_is_read_and_said(server, bucket, tmp_path):
    path = jsonl_gz(tmp_path / "x.json.gz", records(5))
    run = run_target(base_config(server, bucket, object_key_path="u"),
                     lines(SCHEMA, batch("orders", [path.as_uri()], "jsonl", "none"), state(1)))
    assert run.returncode == 0, run.stderr
    assert "gzip-compressed although the BATCH declares no compression" in run.stderr
    assert table_of(server, bucket, "u/").num_rows == 5


def test_batch_before_schema_and_bad_encodings_are_refused(server, bucket, tmp_path):
    path = jsonl_gz(tmp_path / "x.json.gz", records(1)).as_uri()
    run = run_target(base_config(server, bucket), lines(batch("orders", [path]), state(1)))
    assert run.returncode == 1 and "BATCH arrived before any SCHEMA" in run.stderr and run.stdout == ""
    run = run_target(base_config(server, bucket), lines(SCHEMA, batch("orders", [path], "avro"), state(1)))
    assert run.returncode == 1 and "\"avro\" is not supported" in run.stderr and run.stdout == ""
    run = run_target(base_config(server, bucket), lines(SCHEMA, batch("orders", ["https://x/y.json"]), state(1)))
    assert run.returncode == 1 and "expected file:///" in run.stderr and run.stdout == ""
    run = run_target(base_config(server, bucket), lines(SCHEMA, batch("orders", [path], "parquet"), state(1)))
    assert run.returncode == 1 and f"batch file {path}: not a Parquet file" in run.stderr and run.stdout == ""


def test_about_lists_the_batch_capability():
    about = json.loads(subprocess.run([str(BINARY), "--about"], capture_output=True, check=True).stdout)
    assert "batch" in about["capabilities"]
    [setting] = [s for s in about["settings"] if s["name"] == "unknown_message_types"]
    assert setting["default"] == "fail" and setting["allowed_values"] == ["fail", "warn"]


def test_unknown_message_types_stop_the_run_unless_warned(server, bucket):
    text = lines(SCHEMA, *as_record_lines(records(3)), state(1), {"type": "FOO", "stream": "orders"},
                 *as_record_lines(records(2, start=3)), state(2))
    run = run_target(base_config(server, bucket, object_key_path="strict"), text)
    assert run.returncode == 1
    error = run.stderr.strip().splitlines()[-1]
    assert "input line 6" in error and '"FOO"' in error and "unknown_message_types" in error, error
    assert run.states == [state(1)["value"]]
    run = run_target(base_config(server, bucket, object_key_path="lax", unknown_message_types="warn"), text + lines({"type": "FOO"}))
    assert run.returncode == 0, run.stderr
    assert run.states[-1] == state(2)["value"]
    assert '2 messages of unknown type "FOO" were skipped' in run.stderr
    assert table_of(server, bucket, "lax/").num_rows == 5


def objects_by_sequence(server, bucket, prefix):
    """Each data object's ids, in the order the run wrote the objects."""
    keys = [k for k in list_keys(server, bucket, prefix) if "/_rejected/" not in k]
    keys.sort(key=lambda k: k.rsplit("-", 1)[-1])
    return [read_parquet(server, bucket, k).column("id").to_pylist() for k in keys]


def test_decoding_threads_cut_objects_where_one_thread_and_record_lines_do(server, bucket, tmp_path):
    """Large batch files go to the decoding threads in jobs; limits (rows per object,
    row groups) must act on the same records as on one thread and as with RECORD
    lines, and invalid lines in between must be handled in their place."""
    rows = records(60_000)
    for row in rows:  # plain text, which the decoding threads take; escapes every 1,000th
        row["name"] = f"name {row['id']}" if row["id"] % 1000 else row["name"]
    rows[20_001]["price"] = "not a number"  # left to the main thread, quarantined
    half = len(rows) // 2
    urls = [jsonl_gz(tmp_path / "1.json.gz", rows[:half]).as_uri(), jsonl_gz(tmp_path / "2.json.gz", rows[half:]).as_uri()]
    settings = dict(max_batch_rows=7000, row_group_bytes=256 * 1024, invalid_records="quarantine")
    text = lines(SCHEMA, state(0), batch("orders", urls[:1]), state(1), batch("orders", urls[1:]), state(2))
    runs = {}
    for name, extra, singer in [
        ("threads", {}, text),
        ("one", {"parallel_decoding": False}, text),
        ("records", {}, lines(SCHEMA, state(0), *as_record_lines(rows[:half]), state(1),
                              *as_record_lines(rows[half:]), state(2))),
    ]:
        run = run_target(base_config(server, bucket, object_key_path=name, **settings, **extra), singer,
                         env={"RUST_LOG": "debug"})
        assert run.returncode == 0, run.stderr
        assert run.states == [state(0)["value"], state(1)["value"], state(2)["value"]]
        helped = int(run.stderr.split("records decoded by the decoding threads: ")[1].split()[0]) \
            if name != "one" else 0
        assert helped > (50_000 if name == "threads" else 0) or name == "one", helped
        runs[name] = [ids for ids in objects_by_sequence(server, bucket, f"{name}/orders/")]
    assert runs["threads"] == runs["one"] == runs["records"]
    assert sum(len(ids) for ids in runs["threads"]) == 59_999
    assert 20_001 not in sum(runs["threads"], [])
    assert len(runs["threads"]) == 9, "objects were cut by max_batch_rows"
    for name in runs:
        [rejected] = [k for k in list_keys(server, bucket, f"{name}/orders/") if "/_rejected/" in k]
        assert b'"id":20001' in server.client().get_object(Bucket=bucket, Key=rejected)["Body"].read()


def test_nan_and_lone_surrogates_in_batch_files_are_taken_as_in_record_lines(server, bucket, tmp_path):
    """Python's json.dumps writes NaN and Infinity; a file's record holding them (or a
    lone surrogate escape) is taken or refused exactly as the RECORD line would be."""
    text_lines = ['{"id": 1, "price": NaN}', '{"id": 2, "price": -Infinity}', '{"id": 3, "name": "cut \\ud800"}',
                  '{"id": 4, "price": 1.5}']
    path = tmp_path / "py.jsonl"
    path.write_text("\n".join(text_lines) + "\n")
    run = run_target(base_config(server, bucket, object_key_path="nan", invalid_records="quarantine"),
                     lines(SCHEMA, batch("orders", [path.as_uri()], "jsonl", "none"), state(1)))
    assert run.returncode == 0, run.stderr
    records = "".join('{"type": "RECORD", "stream": "orders", "record": %s}\n' % t for t in text_lines)
    plain = run_target(base_config(server, bucket, object_key_path="nanrec", invalid_records="quarantine"),
                       lines(SCHEMA) + records + lines(state(1)))
    assert plain.returncode == 0, plain.stderr
    got, want = (table_of(server, bucket, f"{p}/orders/") for p in ("nan", "nanrec"))
    # NaN != NaN: compare the text form
    assert str(got.to_pylist()) == str(want.to_pylist())
    assert got.column("id").to_pylist() == [1, 2, 4]
    prices = got.column("price").to_pylist()
    assert prices[0] != prices[0] and prices[1] == float("-inf") and prices[2] == 1.5
    [rejected] = [k for k in list_keys(server, bucket, "nan/") if "_rejected" in k]
    entry = json.loads(server.client().get_object(Bucket=bucket, Key=rejected)["Body"].read())
    assert "line 3" in entry["reason"] and "lone leading surrogate" in entry["reason"], entry["reason"]
