"""Reliability: S3 faults injected by a proxy, wrong credentials against a server that
checks signatures, signals and kill -9 at random points, and hostile input. A fault
costs a retry or a clean failure, never a record; no STATE runs ahead of the store."""

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fault_proxy import FaultProxy, Rule
from harness import BINARY, base_config, clean_env, list_keys, read_csv, read_parquet, run_target
from test_pipeline import ids, singer

PART = 5 * 1024 * 1024


@pytest.fixture
def proxy(any_store):
    """A fault proxy in front of each S3 implementation in turn."""
    p = FaultProxy(any_store.port)
    yield p
    p.stop()


def via(proxy, server, bucket, **extra):
    return base_config(server, bucket, aws_endpoint=proxy.endpoint, **extra)


def test_the_harness_sees_an_unfinished_upload(any_store):
    """What the tests below rely on to show that no upload is left behind."""
    bucket, client = any_store.new_bucket(), any_store.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key="a/left.csv")["UploadId"]
    assert any_store.incomplete_uploads(bucket) == ["a/left.csv"]
    client.abort_multipart_upload(Bucket=bucket, Key="a/left.csv", UploadId=upload)
    assert any_store.incomplete_uploads(bucket) == []


def test_transient_faults_are_retried_and_nothing_is_lost(any_store, proxy):
    server, bucket = any_store, any_store.new_bucket()
    proxy.rules = [
        Rule(r"^PUT .*x-id=PutObject", "503", times=2),
        Rule(r"^POST .*\?uploads", "500", times=1),
        Rule(r"^PUT .*partNumber=1&", "reset", times=1),
        Rule(r"^PUT .*partNumber=2&", "stall", times=1),
        Rule(r"^POST .*\?uploadId=", "200-error", times=1),
    ]
    small = ['{"type":"SCHEMA","stream":"small","key_properties":[],"schema":{"properties":{"id":{"type":"integer"}}}}']
    small += ['{"type":"RECORD","stream":"small","record":{"id":%d}}' % i for i in range(10)]
    text = "\n".join(small) + "\n" + singer(30_000)
    config = via(proxy, server, bucket, file_type="csv", part_size_bytes=PART, request_timeout_seconds=2)
    run = run_target(config, text)
    assert run.returncode == 0, run.stderr
    assert all(r.hits == r.times for r in proxy.rules), [(r.pattern, r.hits) for r in proxy.rules]
    assert ids(server, bucket, "exports/run/s0/", "csv") == list(range(30_000))
    assert ids(server, bucket, "exports/run/small/", "csv") == list(range(10))
    assert run.states[-1] == {"at": 30_000}
    assert server.incomplete_uploads(bucket) == []


def test_permanent_put_failure_fails_cleanly(any_store, proxy):
    server, bucket = any_store, any_store.new_bucket()
    proxy.rules = [Rule(r"^PUT .*x-id=PutObject", "500", times=None)]
    text = singer(3_000, state_every=500)
    run = run_target(via(proxy, server, bucket, max_attempts=2, max_batch_rows=1_000), text)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert f"PutObject s3://{bucket}/exports/run/s0/" in last and "InternalError" in last, last
    assert run.states == []
    assert list_keys(server, bucket) == []


def test_permanent_part_failure_aborts_the_upload(any_store, proxy):
    server, bucket = any_store, any_store.new_bucket()
    proxy.rules = [Rule(r"^PUT .*partNumber=2&", "500", times=None)]
    text = singer(30_000, state_every=1_000)
    config = via(proxy, server, bucket, file_type="csv", part_size_bytes=PART, max_attempts=2)
    run = run_target(config, text)
    assert run.returncode == 1
    assert "UploadPart 2 of s3://" in run.stderr and "InternalError" in run.stderr
    assert run.states == []
    assert list_keys(server, bucket) == []
    assert server.incomplete_uploads(bucket) == []


def test_completion_answering_errors_fails_and_aborts(any_store, proxy):
    server, bucket = any_store, any_store.new_bucket()
    proxy.rules = [Rule(r"^POST .*\?uploadId=", "200-error", times=None)]
    config = via(proxy, server, bucket, file_type="csv", part_size_bytes=PART, max_attempts=2)
    run = run_target(config, singer(30_000))
    assert run.returncode == 1 and "CompleteMultipartUpload" in run.stderr, run.stderr
    assert server.incomplete_uploads(bucket) == []


def test_preflight_names_what_is_wrong_before_reading_input(server, bucket):
    cases = [
        (base_config(server, "no-such-bucket-here"), 'bucket "no-such-bucket-here" does not exist'),
        (base_config(server, bucket, aws_endpoint="http://127.0.0.1:9"), "cannot reach the S3 endpoint"),
    ]
    for config, words in cases:
        run = run_target(config, "this is not even JSON\n")
        assert run.returncode == 1
        lines = run.stderr.strip().splitlines()
        assert lines[-1].startswith("target-s3: error: store: preflight: "), lines[-1]
        assert words in lines[-1], lines[-1]


def test_without_preflight_a_missing_bucket_fails_at_upload(server):
    text = '{"type":"STATE","value":{"at":0}}\n' + singer(10)
    run = run_target(base_config(server, "no-such-bucket-here", preflight=False), text)
    assert run.returncode == 1
    assert run.states == [{"at": 0}], "only the STATE before any record"
    assert "NoSuchBucket" in run.stderr.strip().splitlines()[-1]


def test_signatures_are_verified_end_to_end(signing_store):
    bucket = signing_store.new_bucket()
    config = base_config(signing_store, bucket, file_type="csv", part_size_bytes=PART)
    run = run_target(config, singer(30_000))
    assert run.returncode == 0, run.stderr
    assert ids(signing_store, bucket, "exports/run/", "csv") == list(range(30_000))


def test_wrong_secret_key_is_a_clear_error_before_input(signing_store):
    bucket = signing_store.new_bucket()
    run = run_target(base_config(signing_store, bucket, aws_secret_access_key="wrong-secret"), "not JSON\n")
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert "SignatureDoesNotMatch" in last and "aws_secret_access_key" in last, last
    assert "wrong-secret" not in run.stderr


def test_wrong_secret_key_without_preflight_ends_in_one_line_naming_the_setting(signing_store):
    bucket = signing_store.new_bucket()
    config = base_config(signing_store, bucket, aws_secret_access_key="wrong-secret", preflight=False, max_batch_rows=2)
    run = run_target(config, singer(7))
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("target-s3: error: store: PutObject s3://"), last
    assert "SignatureDoesNotMatch" in last and "check aws_secret_access_key" in last, last
    assert "Error {" not in run.stderr and "service error" not in run.stderr, run.stderr
    assert "wrong-secret" not in run.stderr


def stored_ids(server, bucket):
    return set(ids(server, bucket, "exports/run/"))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_killed_runs_never_run_ahead_and_resume_loses_nothing(server, bucket, tmp_path, seed, how):
    rng = random.Random(seed)
    total = 40_000
    text = singer(total, state_every=500)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(server, bucket, max_batch_rows=2_000, row_group_bytes=64 * 1024,
                                             max_concurrent_uploads=2)))
    proc = subprocess.Popen([str(BINARY), "--config", str(config)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    lines = text.splitlines(keepends=True)

    def feed():  # a tap that takes about two seconds, so the signal lands mid-run
        try:
            for start in range(0, len(lines), 1000):
                proc.stdin.write("".join(lines[start:start + 1000]).encode())
                proc.stdin.flush()
                time.sleep(0.05)
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    feeder = threading.Thread(target=feed)
    feeder.start()
    time.sleep(rng.uniform(0.2, 1.5))
    proc.send_signal(getattr(signal, how))
    proc.wait(timeout=60)  # the feeder keeps stdin open: the end of input comes from the tap only
    feeder.join(timeout=60)
    out, err = proc.stdout.read(), proc.stderr.read()
    states = [json.loads(l) for l in out.decode().splitlines()]
    if proc.returncode == 0:
        pytest.skip(f"the run ended before the signal: {err.decode()[-300:]}")  # a fast machine
    assert proc.returncode == (-9 if how == "SIGKILL" else 143), err.decode()[-500:]
    stored = stored_ids(server, bucket)
    covered = states[-1]["at"] if states else 0
    assert set(range(covered)) <= stored, "a STATE ran ahead of the stored records"
    if how == "SIGTERM":
        assert "stopped by SIGTERM" in err.decode()
        assert server.incomplete_uploads(bucket) == []
    # The tap re-sends everything after the last STATE written.
    lines = text.splitlines()
    schema = lines[0]
    state_line = next((i for i, l in enumerate(lines) if l == json.dumps({"type": "STATE", "value": {"at": covered}})), 0)
    resumed = "\n".join([schema] + lines[state_line + 1:]) + "\n"
    run = run_target(base_config(server, bucket), resumed)
    assert run.returncode == 0, run.stderr
    assert stored_ids(server, bucket) == set(range(total))


def malformed_corpus():
    rng = random.Random(11)
    good = singer(20).splitlines()
    schema, records = good[0], good[1:]
    cases = []
    for n in range(8):
        line = rng.choice(records)
        cases.append((f"truncated-{n}", [schema, line[: rng.randrange(1, len(line) - 1)]]))
    for n in range(8):
        line = rng.choice(records)
        spots = [i for i, c in enumerate(line) if c in '{}[]:,"']
        i = rng.choice(spots)
        cases.append((f"flipped-{n}", [schema, line[:i] + "\x01" + line[i + 1:]]))
    cases.append(("deep-nesting", [schema, '{"type":"RECORD","stream":"s0","record":{"id":1,"tags":' + "[" * 5000 + "]" * 5000 + "}}"]))
    cases.append(("deep-envelope", ["[" * 100_000]))
    cases.append(("huge-line", [schema, '{"type":"RECORD","stream":"s0","record":{"name":"' + "x" * 3_000_000 + '"}}']))
    cases.append(("wrong-type", [schema, '{"type":"RECORD","stream":"s0","record":{"id":"one"}}']))
    cases.append(("record-not-object", [schema, '{"type":"RECORD","stream":"s0","record":"x"}']))
    cases.append(("schema-not-object", ['{"type":"SCHEMA","stream":"s0","schema":[1]}']))
    cases.append(("no-type", ['{"stream":"s0"}']))
    cases.append(("number-overflow", [schema, '{"type":"RECORD","stream":"s0","record":{"id":1e999999}}']))
    cases.append(("lone-surrogate", [schema, '{"type":"RECORD","stream":"s0","record":{"id":1,"name":"\\ud800"}}']))
    return cases


def test_malformed_inputs_fail_with_one_line_and_no_panic(server, bucket, tmp_path):
    config = base_config(server, bucket, max_line_bytes=1024 * 1024)
    for name, lines in malformed_corpus():
        run = run_target(config, "\n".join(lines) + "\n")
        assert run.returncode == 1, name
        assert "panicked" not in run.stderr, (name, run.stderr[-500:])
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith(f"target-s3: error: input line {len(lines)}"), (name, last)
        assert len(last) < 400, (name, len(last))
    for name, data in [("bad-utf8", b'{"type":"STATE","value":"\xff\xfe"}\n'),
                       ("nul-bytes", b"\x00\x00\x00\n")]:
        proc = subprocess.run([str(BINARY), "--config", "/dev/stdin"], input=b"", capture_output=True)
        assert proc.returncode != 0  # a config that is not a file still fails cleanly
        path = tmp_path / "c.json"
        path.write_text(json.dumps(config))
        proc = subprocess.run([str(BINARY), "--config", str(path)], input=data, capture_output=True, env=clean_env())
        assert proc.returncode == 1 and b"panicked" not in proc.stderr, name
        assert proc.stderr.strip().splitlines()[-1].startswith(b"target-s3: error: input line 1"), name


def test_malformed_json_is_never_skipped(server, bucket):
    # (NaN is not malformed here: taps write it, and it goes to invalid_records.)
    text = singer(3) + '{"type":"RECORD","stream":"s0","record":{"id":1,,}}\n'
    run = run_target(base_config(server, bucket, invalid_records="skip"), text)
    assert run.returncode == 1 and "not a JSON object" in run.stderr
