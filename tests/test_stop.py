"""Stopping: real signals while the run waits on a store that does not answer (through the
fault proxy), closed pipes, revoked credentials and a stalled store. A stop is prompt and
clean: the right exit code and one line naming the signal, no STATE past the stored
records, and no multipart upload left open without being named.

The time bounds here tell a clean stop from a hang (the unfixed target took minutes),
with a margin for a loaded machine."""

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from fault_proxy import FaultProxy, Rule
from harness import BINARY, base_config, clean_env, list_keys
from test_pipeline import ids, singer

PART = 5 * 1024 * 1024
COMPLETE = r"^POST .*\?uploadId="
PARTS = r"^PUT .*partNumber="
EXIT_CODES = {"SIGTERM": 143, "SIGINT": 130, "SIGHUP": 129, "SIGQUIT": 131}
ACCESS_DENIED = (403, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                      b'<Message>Access Denied</Message><RequestId>x</RequestId></Error>')


@pytest.fixture
def proxy(server):
    p = FaultProxy(server.port)
    yield p
    p.stop()


def open_uploads(server, bucket):
    return server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


class Running:
    """The target as a process of its own: input fed from a thread (that may block when
    the target stops reading), stdout and stderr to files."""

    def __init__(self, config, text, tmp_path, *args, stderr=None, stdout=None):
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        self.out_path, self.err_path = tmp_path / "stdout", tmp_path / "stderr"
        out = stdout if stdout is not None else open(self.out_path, "wb")
        err = stderr if stderr is not None else open(self.err_path, "wb")
        self.proc = subprocess.Popen([str(BINARY), "--config", str(path), *args], stdin=subprocess.PIPE,
                                     stdout=out, stderr=err, env=clean_env())
        for f in (out, err):
            if f not in (stdout, stderr):
                f.close()
        self.feeder = threading.Thread(target=self.feed, args=(text.encode(),), daemon=True)
        self.feeder.start()

    def feed(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    def wait_for(self, what, timeout=60):
        deadline = time.monotonic() + timeout
        while not what():
            assert self.proc.poll() is None, f"the target ended early: {self.stderr()[-800:]}"
            assert time.monotonic() < deadline, "timed out waiting"
            time.sleep(0.05)

    def signal_and_time(self, name, timeout=60):
        sent = time.monotonic()
        self.proc.send_signal(getattr(signal, name))
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"still running {timeout} s after {name}: {self.stderr()[-800:]}")
        return time.monotonic() - sent

    def stderr(self):
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def states(self):
        return [json.loads(line) for line in self.out_path.read_text().splitlines()]


def assert_states_covered(server, bucket, states):
    """Every record a STATE covers is stored."""
    covered = states[-1]["at"] if states else 0
    assert set(range(covered)) <= set(ids(server, bucket, "exports/run/", "csv")), "a STATE ran ahead"


def stalled_completion(server, bucket, proxy, tmp_path, **settings):
    """A run whose input has ended and whose one object's CompleteMultipartUpload never
    answers; returns once the target is waiting for that answer."""
    proxy.rules = [Rule(COMPLETE, "stall", times=None, seconds=600)]
    config = base_config(server, bucket, aws_endpoint=proxy.endpoint, file_type="csv", part_size_bytes=PART,
                         **settings)
    run = Running(config, singer(30_000, state_every=1_000), tmp_path)
    run.wait_for(lambda: proxy.saw(COMPLETE))
    run.feeder.join(timeout=30)
    assert not run.feeder.is_alive(), "the input has ended"
    return run


def assert_stopped_by(run, name, elapsed, bound, server, bucket):
    err = run.stderr()
    assert run.proc.returncode == EXIT_CODES[name], err[-800:]
    assert elapsed < bound, f"{elapsed:.1f} s after {name}"
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"target-s3: error: stopped by {name}:"), last
    assert "panicked" not in err
    assert_states_covered(server, bucket, run.states())
    assert open_uploads(server, bucket) == [], "every multipart upload is aborted"


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_ends_a_stalled_completion_after_the_shutdown_timeout(server, bucket, proxy, tmp_path, name):
    run = stalled_completion(server, bucket, proxy, tmp_path, shutdown_timeout_seconds=3)
    elapsed = run.signal_and_time(name)
    assert_stopped_by(run, name, elapsed, 3 + 2, server, bucket)
    assert elapsed >= 2.5, f"uploads completing get shutdown_timeout_seconds, not {elapsed:.1f} s"
    assert run.states() == [], "the one object holding every record was never stored"
    assert list_keys(server, bucket) == []


def test_a_signal_while_an_upload_is_being_created_still_aborts_it(server, bucket, proxy, tmp_path):
    create = r"^POST .*\?uploads"
    proxy.rules = [Rule(create, "delay", times=None, seconds=0.5)]
    config = base_config(server, bucket, aws_endpoint=proxy.endpoint, file_type="csv", part_size_bytes=PART,
                         shutdown_timeout_seconds=3)
    run = Running(config, singer(30_000, state_every=1_000), tmp_path)
    run.wait_for(lambda: proxy.saw(create))
    elapsed = run.signal_and_time("SIGTERM")
    time.sleep(1)  # the delayed request reaches the server even if the target has gone
    assert_stopped_by(run, "SIGTERM", elapsed, 3 + 2, server, bucket)


def test_sigquit_stops_without_waiting_for_completions(server, bucket, proxy, tmp_path):
    run = stalled_completion(server, bucket, proxy, tmp_path, shutdown_timeout_seconds=60)
    elapsed = run.signal_and_time("SIGQUIT")
    assert_stopped_by(run, "SIGQUIT", elapsed, 5, server, bucket)


def test_a_second_signal_exits_at_once(server, bucket, proxy, tmp_path):
    run = stalled_completion(server, bucket, proxy, tmp_path, shutdown_timeout_seconds=60)
    run.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert run.proc.poll() is None, "the first signal gives completions their time"
    elapsed = run.signal_and_time("SIGINT")
    err = run.stderr()
    assert run.proc.returncode == 130, err[-800:]
    assert elapsed < 3, f"{elapsed:.1f} s after the second signal"
    assert "second signal (SIGINT)" in err.strip().splitlines()[-1], err[-500:]
    assert_states_covered(server, bucket, run.states())


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_stops_reading_blocked_on_busy_upload_slots(server, bucket, proxy, tmp_path, name):
    proxy.rules = [Rule(PARTS, "stall", times=None, seconds=600)]
    config = base_config(server, bucket, aws_endpoint=proxy.endpoint, file_type="csv", part_size_bytes=PART,
                         max_concurrent_uploads=1, shutdown_timeout_seconds=3)
    run = Running(config, singer(200_000, state_every=1_000), tmp_path)
    run.wait_for(lambda: proxy.saw(PARTS))
    time.sleep(1)  # the reader fills the next part, then waits for the only slot
    assert run.feeder.is_alive(), "the input has not all been read"
    elapsed = run.signal_and_time(name)
    assert_stopped_by(run, name, elapsed, 3 + 2, server, bucket)


def test_a_signal_ends_a_stalled_publish_step(server, bucket, proxy, tmp_path):
    manifest = r"^PUT .*/_manifests/"
    proxy.rules = [Rule(manifest, "stall", times=None, seconds=600)]
    config = base_config(server, bucket, aws_endpoint=proxy.endpoint, file_type="csv", manifest=True,
                         shutdown_timeout_seconds=3)
    run = Running(config, singer(3_000, state_every=1_000), tmp_path)
    run.wait_for(lambda: proxy.saw(manifest))
    elapsed = run.signal_and_time("SIGTERM")
    assert_stopped_by(run, "SIGTERM", elapsed, 3 + 2, server, bucket)
    assert run.states() == [], "STATE is held for the manifest, which was not written"


def test_a_closed_stderr_neither_panics_nor_leaves_uploads(server, bucket, tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader of the logs is gone before the first line
    config = base_config(server, bucket, file_type="csv", part_size_bytes=PART)
    text = singer(30_000, state_every=1_000)
    run = Running(config, text, tmp_path, stderr=write_end)
    os.close(write_end)
    run.proc.wait(timeout=120)
    assert run.proc.returncode == 0, "not 101 (a panic), and the load is whole"
    assert run.states()[-1] == {"at": 30_000}
    assert_states_covered(server, bucket, run.states())
    assert ids(server, bucket, "exports/run/", "csv") == list(range(30_000))
    assert open_uploads(server, bucket) == []


@pytest.mark.parametrize("logs", ["stderr", "stdout"])
def test_a_closed_stdout_ends_the_run_saying_state_could_not_be_written(server, bucket, tmp_path, logs):
    read_end, write_end = os.pipe()
    os.close(read_end)
    config = base_config(server, bucket, file_type="csv", part_size_bytes=PART)
    args = ["--log_to_stdout", "1"] if logs == "stdout" else []
    run = Running(config, singer(30_000, state_every=1_000), tmp_path, *args, stdout=write_end)
    os.close(write_end)
    run.proc.wait(timeout=120)
    err = run.stderr()
    assert run.proc.returncode == 1, err[-800:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("target-s3: error: i/o: STATE could not be written: "), last
    assert "panicked" not in err
    assert open_uploads(server, bucket) == []


def test_revoked_credentials_name_the_upload_whose_abort_failed(server, bucket, proxy, tmp_path):
    proxy.rules = [Rule(r"^PUT .*partNumber=2&", "answer", times=None, answer=ACCESS_DENIED),
                   Rule(r"^DELETE .*uploadId=", "answer", times=None, answer=ACCESS_DENIED)]
    config = base_config(server, bucket, aws_endpoint=proxy.endpoint, file_type="csv", part_size_bytes=PART)
    run = Running(config, singer(30_000, state_every=1_000), tmp_path)
    run.proc.wait(timeout=120)
    err = run.stderr()
    assert run.proc.returncode == 1, err[-800:]
    assert "UploadPart 2 of s3://" in err and "AccessDenied" in err, err[-800:]
    [upload] = open_uploads(server, bucket)  # the abort was refused: the upload is still open
    named = [line for line in err.splitlines() if upload["UploadId"] in line]
    assert named, f"upload {upload['UploadId']} is not named: {err[-1500:]}"
    assert any(upload["Key"] in line and bucket in line and "lifecycle rule" in line for line in named), named
    assert run.states() == []
    server.client().abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def test_a_stalled_store_fails_within_its_retries(server, bucket, proxy, tmp_path):
    proxy.rules = [Rule(r"^PUT ", "stall", times=None, seconds=600)]
    config = base_config(server, bucket, aws_endpoint=proxy.endpoint, request_timeout_seconds=3, max_attempts=3,
                         max_batch_rows=200, max_concurrent_uploads=2)
    started = time.monotonic()
    run = Running(config, singer(4_000, state_every=100), tmp_path)
    run.proc.wait(timeout=120)
    elapsed = time.monotonic() - started
    err = run.stderr()
    assert run.proc.returncode == 1, err[-800:]
    assert elapsed < 12, f"{elapsed:.1f} s: uploads started after the first failure were waited for"
    last = err.strip().splitlines()[-1]
    assert re.search(r"PutObject s3://\S+ failed", last), last
    assert run.states() == []


def test_a_local_folder_removed_mid_run_is_an_error_not_made_again(tmp_path):
    import shutil

    folder = tmp_path / "lake"
    folder.mkdir()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"aws_endpoint": f"file://{folder}", "bucket": "b", "file_type": "csv",
                                  "object_key_path": "exports/run", "max_batch_rows": 100}))
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([str(BINARY), "--config", str(config)], stdin=subprocess.PIPE, stdout=out,
                                stderr=err, env=clean_env())
    lines = singer(400, state_every=100).splitlines(keepends=True)
    proc.stdin.write("".join(lines[:102]).encode())  # the schema, 100 records and their STATE
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while not out_path.read_text():  # the first object is stored: its STATE is out
        assert time.monotonic() < deadline, "the first object was not written"
        time.sleep(0.05)
    shutil.rmtree(folder)
    try:
        proc.stdin.write("".join(lines[102:]).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    proc.wait(timeout=60)
    last = err_path.read_text().strip().splitlines()[-1]
    assert proc.returncode == 1, last
    assert "the local folder" in last and "is gone" in last and str(folder) in last, last
    assert not folder.exists(), "the removed folder is not made again"
    assert [json.loads(l) for l in out_path.read_text().splitlines()] == [{"at": 100}]
