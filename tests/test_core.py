"""The main path end to end: Singer lines in, objects in a real S3-compatible server
(moto, over HTTP on loopback), STATE lines out. Objects are read back with pyarrow and
Python's csv module, not with the project's own code."""

import datetime as dt
import json
import re
import subprocess
import time

import pyarrow as pa

from harness import (
    BINARY,
    SAMPLE,
    base_config,
    clean_env,
    list_keys,
    read_csv,
    read_parquet,
    run_target,
)

STATES = [json.loads(l)["value"] for l in SAMPLE.splitlines() if '"STATE"' in l]
KEY_FILE = re.compile(r"/\d{8}-\d{6}-[0-9a-f]{16}-\d{5}\.(csv|parquet)$")

USERS = [
    (1, "Ada Lovelace", "ada@example.com", True, 98.5,
     dt.datetime(2024, 1, 15, 9, 30, 0, 123456, tzinfo=dt.timezone.utc), dt.date(1815, 12, 10)),
    (2, 'Grace, "Amazing" Hopper', None, False, -0.25,
     dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=dt.timezone.utc), dt.date(1906, 12, 9)),
    (3, "Katherine Johnson", None, True, 1e-7,
     dt.datetime(2024, 3, 10, 8, 15, tzinfo=dt.timezone.utc), None),
    (4, "Dorothy Vaughan", "dorothy@example.com", True, 77.0,
     dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc), dt.date(1910, 9, 20)),
]
USER_COLUMNS = ["id", "name", "email", "active", "score", "signed_up_at", "birthday"]
ORDER_COLUMNS = ["order_id", "user_id", "amount", "placed_at", "shipped", "note"]


def keys_of(server, bucket, table):
    keys = list_keys(server, bucket, f"exports/run/{table}/")
    assert keys, f"no objects for {table}"
    for key in keys:
        assert KEY_FILE.search(key), key
        assert "//" not in key and not key.startswith("/")
    return keys


def parquet_rows(server, bucket, table):
    tables = [read_parquet(server, bucket, k) for k in keys_of(server, bucket, table)]
    return pa.concat_tables(tables)


def test_parquet_two_streams_types_values_and_final_state(server, bucket):
    run = run_target(base_config(server, bucket), SAMPLE)
    assert run.returncode == 0, run.stderr
    # The first STATE precedes every record, so it is covered at once; the rest are
    # held until the end of input, where only the newest is written.
    assert run.states == [STATES[0], STATES[-1]]

    users = parquet_rows(server, bucket, "users")
    assert users.column_names == USER_COLUMNS
    assert [str(t) for t in users.schema.types] == [
        "int64", "string", "string", "bool", "double", "timestamp[us, tz=UTC]", "date32[day]",
    ]
    assert sorted(users.to_pylist(), key=lambda r: r["id"]) == [
        dict(zip(USER_COLUMNS, row)) for row in USERS
    ]

    orders = parquet_rows(server, bucket, "orders")
    assert orders.column_names == ORDER_COLUMNS
    assert str(orders.schema.field("amount").type) == "double"
    rows = sorted(orders.to_pylist(), key=lambda r: r["order_id"])
    assert [r["amount"] for r in rows] == [12.75, 1999999.99, 0.0]
    assert rows[0]["placed_at"] == dt.datetime(2024, 3, 1, 8, 0, tzinfo=dt.timezone.utc)
    assert rows[1]["note"] == "line one\nline two" and rows[1]["shipped"] is None
    assert rows[2]["note"] == "çà et là ✓"


def test_csv_two_streams_read_by_python_csv(server, bucket):
    run = run_target(base_config(server, bucket, file_type="csv"), SAMPLE)
    assert run.returncode == 0, run.stderr
    assert run.states == [STATES[0], STATES[-1]]

    [users_key] = keys_of(server, bucket, "users")
    assert users_key.endswith(".csv")
    rows = read_csv(server, bucket, users_key)
    assert rows[0] == USER_COLUMNS
    assert rows[1:] == [
        ["1", "Ada Lovelace", "ada@example.com", "true", "98.5", "2024-01-15T09:30:00.123456Z", "1815-12-10"],
        ["2", 'Grace, "Amazing" Hopper', "", "false", "-0.25", "2024-02-29T23:59:59Z", "1906-12-09"],
        ["3", "Katherine Johnson", "", "true", "1e-7", "2024-03-10T08:15:00Z", ""],
        ["4", "Dorothy Vaughan", "dorothy@example.com", "true", "77", "0001-01-01T00:00:00Z", "1910-09-20"],
    ]
    [orders_key] = keys_of(server, bucket, "orders")
    orders = read_csv(server, bucket, orders_key)
    assert orders[0] == ORDER_COLUMNS
    assert [r[5] for r in orders[1:]] == ["gift wrap", "line one\nline two", "çà et là ✓"]
    assert [r[3] for r in orders[1:]] == ["2024-03-01T08:00:00Z", "2024-03-02T00:00:00Z", "2024-03-03T12:30:45.500Z"]


def test_states_follow_flushes_in_order_and_never_repeat(server, bucket):
    config = base_config(server, bucket, max_batch_rows=1, max_concurrent_uploads=1)
    run = run_target(config, SAMPLE)
    assert run.returncode == 0, run.stderr
    states = run.states
    assert states[-1] == STATES[-1]
    positions = [STATES.index(s) for s in states]
    assert positions == sorted(set(positions)), states
    total = sum(len(keys_of(server, bucket, t)) for t in ("users", "orders"))
    assert total == 7, "one object per record with max_batch_rows=1"


def test_header_case(server, bucket):
    for case, expect in (("upper", str.upper), ("lower", str.lower)):
        prefix = f"exports/run/{case}"
        config = base_config(server, bucket, column_header_format=case, object_key_path=prefix)
        run = run_target(config, SAMPLE)
        assert run.returncode == 0, run.stderr
        [key] = list_keys(server, bucket, f"{prefix}/users/")
        assert read_parquet(server, bucket, key).column_names == [expect(c) for c in USER_COLUMNS]
        config["file_type"] = "csv"
        config["object_key_path"] = prefix + "-csv"
        assert run_target(config, SAMPLE).returncode == 0
        [key] = list_keys(server, bucket, f"{prefix}-csv/users/")
        assert read_csv(server, bucket, key)[0] == [expect(c) for c in USER_COLUMNS]
    clash = {"type": "SCHEMA", "stream": "clash", "key_properties": [],
             "schema": {"properties": {"id": {"type": "integer"}, "ID": {"type": "integer"}}}}
    run = run_target(base_config(server, bucket, column_header_format="upper"), json.dumps(clash))
    assert run.returncode != 0
    assert 'input line 1, stream "clash": two properties become column "ID"' in run.stderr


def test_date_partition_folder(server, bucket):
    before = dt.datetime.now(dt.timezone.utc)
    config = base_config(server, bucket, date_partition_format="year=%Y/month=%m/day=%d")
    run = run_target(config, SAMPLE)
    after = dt.datetime.now(dt.timezone.utc)
    assert run.returncode == 0, run.stderr
    folders = {before.strftime("year=%Y/month=%m/day=%d"), after.strftime("year=%Y/month=%m/day=%d")}
    for key in list_keys(server, bucket):
        assert any(key.startswith(f"exports/run/{t}/{f}/") for f in folders for t in ("users", "orders")), key


def test_batches_within_one_second_get_distinct_keys(server, bucket):
    schema = {"type": "SCHEMA", "stream": "s", "key_properties": [], "schema": {"properties": {"n": {"type": "integer"}}}}
    lines = [json.dumps(schema)] + [json.dumps({"type": "RECORD", "stream": "s", "record": {"n": n}}) for n in range(50)]
    start = time.time()
    run = run_target(base_config(server, bucket, max_batch_rows=1), "\n".join(lines))
    assert run.returncode == 0, run.stderr
    keys = list_keys(server, bucket, "exports/run/s/")
    assert len(keys) == 50 and len(set(keys)) == 50
    stamps = {k.split("/")[-1][:15] for k in keys}
    assert len(stamps) < 50, f"the run took {time.time() - start:.1f}s; keys must share seconds for this test"
    values = sorted(v for k in keys for v in read_parquet(server, bucket, k).column("n").to_pylist())
    assert values == list(range(50))


def test_two_runs_never_overwrite(server, bucket):
    for _ in range(2):
        assert run_target(base_config(server, bucket), SAMPLE).returncode == 0
    assert len(list_keys(server, bucket, "exports/run/users/")) == 2


def test_role_arn_through_sts(own_server):
    server = own_server
    bucket = server.new_bucket()
    config = base_config(server, bucket, role_arn="arn:aws:iam::123456789012:role/loader",
                         role_session_name="target-s3-test", external_id="ext-1")
    run = run_target(config, SAMPLE)
    assert run.returncode == 0, run.stderr
    assert len(parquet_rows(server, bucket, "users")) == 4
    calls = [r for r in server.assumed_roles() if r["session_name"] == "target-s3-test"]
    assert len(calls) == 1, server.assumed_roles()
    assert calls[0]["role_arn"] == "arn:aws:iam::123456789012:role/loader"
    assert calls[0]["external_id"] == "ext-1"


def test_region_defaults_with_endpoint(server, bucket):
    config = base_config(server, bucket)
    del config["aws_region"]
    run = run_target(config, SAMPLE)
    assert run.returncode == 0, run.stderr


def test_missing_bucket_fails_without_covering_state(server):
    run = run_target(base_config(server, "no-such-bucket-here", preflight=False), SAMPLE)
    assert run.returncode != 0
    # Only the STATE that precedes every record may be written.
    assert run.states == [STATES[0]]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("target-s3: error: store: PutObject s3://no-such-bucket-here/"), last
    assert "NoSuchBucket" in last


BAD_CONFIGS = [
    ({"file_type": "xlsx"}, ['"file_type"', '"xlsx"', '"csv", "parquet"']),
    ({"object_key_path": "s3://bucket/prefix"}, ['"object_key_path"', "s3://bucket/prefix"]),
    ({"date_partition_format": "%Y/%Q"}, ['"date_partition_format"', "strftime"]),
    ({"column_header_format": "title"}, ['"column_header_format"', '"upper", "lower"']),
    ({"bucket": "s3://my-bucket"}, ['"bucket"', "s3://my-bucket"]),
    ({"aws_endpoint": "127.0.0.1:9000"}, ['"aws_endpoint"', "http://"]),
    ({"max_batch_rows": -5}, ['"max_batch_rows"', "-5"]),
    ({"role_arn": "loader"}, ['"role_arn"', "arn:aws:iam::"]),
]


def test_bad_config_fails_before_reading_input(server, bucket, tmp_path):
    for change, words in BAD_CONFIGS:
        config = {**base_config(server, bucket), **change}
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        # stdin stays open and silent: the target must exit without waiting for input.
        proc = subprocess.Popen([str(BINARY), "--config", str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        try:
            proc.wait(timeout=20)  # not communicate(): that would close stdin
        finally:
            proc.kill()
        proc.stdin.close()
        out, err = proc.stdout.read(), proc.stderr.read()
        assert proc.returncode != 0, change
        assert out == b""
        lines = err.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("target-s3: error: config: "), err
        for word in words:
            assert word in lines[0], (word, lines[0])
    assert list_keys(server, bucket) == []


def test_missing_required_key_and_config_merge(server, bucket, tmp_path):
    first = base_config(server, bucket, file_type="xlsx")
    del first["object_key_path"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(first))
    b.write_text(json.dumps({"file_type": "csv", "object_key_path": "merged"}))
    run = run_target(dict(first, file_type="csv"), SAMPLE)
    assert run.returncode != 0 and 'missing required key "object_key_path"' in run.stderr
    proc = subprocess.run([str(BINARY), "--config", str(a), "--config", str(b)], input=SAMPLE.encode(),
                          capture_output=True, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    assert list_keys(server, bucket, "merged/users/")[0].endswith(".csv")


def test_input_file_flag(server, bucket, tmp_path):
    path = tmp_path / "in.singer"
    path.write_text(SAMPLE)
    run = run_target(base_config(server, bucket), "", "--input", str(path))
    assert run.returncode == 0, run.stderr
    assert run.states[-1] == STATES[-1]


INPUT_ERRORS = [
    ("{not json}", 2, None, "not a JSON object"),
    ('{"type": "RECORD", "stream": "ghost", "record": {"id": 1}}', 2, "ghost", "before any SCHEMA"),
    ('{"type": "RECORD", "stream": "users", "record": {"name": "x"}}', 2, "users", 'key property "id"'),
    ('{"type": "SCHEMA", "stream": "empty", "schema": [], "key_properties": []}', 2, "empty", '"schema" must be an object, got an array'),
    ('{"type": "RECORD", "stream": "users", "record": {"id": "seven"}}', 2, "users", 'field "id": expected an integer'),
    ('{"type": "RECORD", "stream": "users", "record": {"id": 9, "signed_up_at": "soon"}}', 2, "users", "RFC 3339"),
    ('{"type": "STATE"}', 2, None, '"value"'),
]


def test_input_errors_name_line_and_stream(server, bucket):
    schema = SAMPLE.splitlines()[1]
    for bad, line, stream, words in INPUT_ERRORS:
        run = run_target(base_config(server, bucket), "\n".join([schema, "", bad]).replace("\n\n", "\n"))
        assert run.returncode != 0, bad
        last = run.stderr.strip().splitlines()[-1]
        where = f'input line {line}, stream "{stream}"' if stream else f"input line {line}:"
        assert last.startswith(f"target-s3: error: {where}"), (bad, last)
        assert words in last, (bad, last)
        assert "panicked" not in run.stderr


def test_blank_lines_are_skipped_and_unknown_types_only_when_asked(server, bucket):
    text = "\n\n" + SAMPLE.replace("\n", "\n  \n", 3) + '\n{"type": "FUTURE", "stream": "users"}\n'
    run = run_target(base_config(server, bucket, unknown_message_types="warn"), text)
    assert run.returncode == 0, run.stderr
    assert 'message type "FUTURE" is not known; skipped' in run.stderr
    assert len(parquet_rows(server, bucket, "users")) == 4
    strict = run_target(base_config(server, bucket, object_key_path="strict"), text)
    assert strict.returncode == 1 and '"FUTURE" is not one this target knows' in strict.stderr


def test_secrets_stay_out_of_output(server, bucket):
    debug = {"RUST_LOG": "trace"}
    config = base_config(server, bucket, aws_session_token="session-token-value")
    ok = run_target(config, SAMPLE, env=debug)
    assert ok.returncode == 0 and "DEBUG" in ok.stderr
    failed = run_target(dict(config, bucket="no-such-bucket-x", preflight=False), SAMPLE, env=debug)
    assert failed.returncode != 0
    for r in (ok, failed):
        assert "testing-secret-key-do-not-log" not in r.stdout + r.stderr
        assert "session-token-value" not in r.stdout + r.stderr
