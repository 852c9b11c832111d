"""Mage's runner drives target-s3 through the shim (mage/amazon_s3/__init__.py) installed
in place of Mage's Amazon S3 destination: the runner code is mage-ai's own, from the
package index, in .venv-mage (see mage_runner.py for what is replayed and why)."""

import json
import shutil
import subprocess

import pyarrow as pa
import pytest

from harness import (BINARY, ROOT, S3sFsServer, base_config, clean_env, list_keys, read_parquet,
                     run_target, s3s_fs_binary)

MAGE_PYTHON = ROOT / ".venv-mage" / "bin" / "python"

SCHEMA = {"type": "SCHEMA", "stream": "users", "key_properties": ["id"],
          "bookmark_properties": ["updated_at"], "replication_method": "INCREMENTAL",
          "unique_conflict_method": "UPDATE",
          "schema": {"type": "object", "properties": {
              "id": {"type": "integer"}, "name": {"type": ["null", "string"]},
              "amount": {"type": ["null", "integer"]}, "secret_note": {"type": ["null", "string"]},
              "updated_at": {"type": ["null", "string"], "format": "date-time"}}}}

# The catalog Mage passes (__execute_destination's catalog_final): the stream's settings
# and its schema with the selected columns only — secret_note was deselected in the
# block — and the destination's types (amount widened to number).
CATALOG = {"streams": [{
    "stream": "users", "tap_stream_id": "users", "key_properties": ["id"],
    "bookmark_properties": ["updated_at"], "replication_method": "INCREMENTAL",
    "unique_conflict_method": "UPDATE",
    "schema": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": ["null", "string"]},
        "amount": {"type": ["null", "number"]},
        "updated_at": {"type": ["null", "string"], "format": "date-time"}}},
    "metadata": [{"breadcrumb": [], "metadata": {"selected": True}},
                 {"breadcrumb": ["properties", "secret_note"], "metadata": {"selected": False}}]}]}


def record(i: int) -> dict:
    return {"type": "RECORD", "stream": "users", "record": {
        "id": i, "name": f"user {i}", "amount": None if i % 3 == 0 else i * 10,
        "secret_note": f"do not copy {i}", "updated_at": f"2024-05-0{1 + i % 9}T10:00:00+00:00"}}


def mage_input(records: int = 12) -> tuple[str, dict]:
    """The source block's output file as Mage writes it: the source's stdout and stderr,
    so log text, LOG lines and a traceback among the Singer messages."""
    state = None
    lines = ["Starting source users", json.dumps(SCHEMA),
             json.dumps({"type": "LOG", "level": "INFO", "message": "source log: fetched page 1",
                         "tags": {"stream": "users"}, "timestamp": 1714557600, "caller": "Postgres"})]
    for i in range(1, records + 1):
        lines.append(json.dumps(record(i)))
        if i % 5 == 0:
            state = {"bookmarks": {"users": {"updated_at": f"2024-05-0{1 + i % 9}T10:00:00+00:00", "n": i}}}
            lines.append(json.dumps({"type": "STATE", "value": state}))
            lines.append(json.dumps({"level": "INFO", "message": f"source log: {i} rows so far"}))
    lines += ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>',
              "ValueError: a warning the source survived", ""]
    state = {"bookmarks": {"users": {"updated_at": "2024-05-09T10:00:00+00:00", "n": records}}}
    lines.append(json.dumps({"type": "STATE", "value": state}))
    return "\n".join(lines) + "\n", state


@pytest.fixture
def shim(tmp_path):
    """A `mage_integrations` package with target-s3's shim as its Amazon S3 destination,
    the way the README installs it (the shim copied over amazon_s3/__init__.py)."""
    if not MAGE_PYTHON.exists():
        pytest.skip(f"MAGE-AI IS NOT INSTALLED at {MAGE_PYTHON}: `make test` installs it")
    site = tmp_path / "site"
    shutil.copytree(ROOT / "tests" / "mage_stand_in", site)
    destination = site / "mage_integrations" / "destinations" / "amazon_s3"
    destination.mkdir(parents=True)
    (destination.parent / "__init__.py").write_text("")
    shutil.copy(ROOT / "mage" / "amazon_s3" / "__init__.py", destination / "__init__.py")
    return site


def mage(shim, tmp_path, mode: str, config: dict, text: str = "", catalog=None) -> dict:
    """Runs Mage's runner (mage_runner.py, in .venv-mage) once; returns what it saw."""
    files = {name: tmp_path / name for name in ("input.txt", "state.txt", "source_state.json")}
    files["input.txt"].write_text(text)
    request = {"config": config, "stream": "users", "catalog": catalog,
               "input_file": str(files["input.txt"]), "state_file": str(files["state.txt"]),
               "source_state_file": str(files["source_state.json"])}
    (tmp_path / "request.json").write_text(json.dumps(request))
    env = {**clean_env(), "PYTHONPATH": str(shim), "TARGET_S3_BIN": str(BINARY)}
    proc = subprocess.run([str(MAGE_PYTHON), str(ROOT / "tests" / "mage_runner.py"), mode,
                           str(tmp_path / "request.json")], capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout.decode().splitlines()[-1])


def mage_config(server, bucket, **extra) -> dict:
    """A config as Mage's UI saves it: cleared fields as empty strings, no file_type."""
    config = base_config(server, bucket, role_arn="", column_header_format="",
                         date_partition_format="", **extra)
    del config["file_type"]
    return config


def test_mages_runner_gets_through_a_whole_run(server, bucket, shim, tmp_path):
    text, last_state = mage_input()
    seen = mage(shim, tmp_path, "load", mage_config(server, bucket), text, CATALOG)
    assert seen["exception"] is None and seen["returncode"] == 0, seen
    assert seen["source_state"] == last_state, "the state Mage hands the source next"
    [key] = list_keys(server, bucket, "exports/run/users/")
    assert key.endswith(".parquet"), "Mage's default file_type"
    table = read_parquet(server, bucket, key)
    assert table.column_names == ["id", "name", "amount", "updated_at", "_mage_created_at",
                                  "_mage_updated_at"], "secret_note was deselected"
    assert table.column("id").to_pylist() == list(range(1, 13))
    assert table.schema.field("amount").type == pa.float64(), "the catalog's type"
    assert table.column("amount").to_pylist() == [None if i % 3 == 0 else i * 10.0 for i in range(1, 13)]
    created = table.schema.field("_mage_created_at").type
    assert pa.types.is_timestamp(created) and created.tz == "UTC"
    assert table.column("_mage_created_at").null_count == 0
    assert b"do not copy" not in str(table.to_pylist()).encode()
    logged = "\n".join(seen["logged"])
    assert "source log: fetched page 1" in logged and "source log: 10 rows so far" in logged
    assert "4 skipped, 3 source log lines relayed" in logged, "log text and a traceback; LOG lines"
    assert "done: 12 records" in logged


def test_a_long_run_with_log_lines_between_records(server, bucket, shim, tmp_path):
    """Enough input for the decoding threads and several objects, log text all along."""
    total = 60_000
    lines = [json.dumps(SCHEMA)]
    for i in range(1, total + 1):
        lines.append(json.dumps(record(i)))
        if i % 1000 == 0:
            lines.append(f"INFO fetched {i} rows")
            lines.append(json.dumps({"type": "STATE", "value": {"bookmarks": {"users": {"n": i}}}}))
    config = mage_config(server, bucket, max_batch_rows=25_000, row_group_bytes=256 * 1024)
    seen = mage(shim, tmp_path, "load", config, "\n".join(lines) + "\n", CATALOG)
    assert seen["exception"] is None, seen
    assert seen["source_state"] == {"bookmarks": {"users": {"n": total}}}
    keys = list_keys(server, bucket, "exports/run/users/")
    assert len(keys) == 3
    ids = [i for k in keys for i in read_parquet(server, bucket, k).column("id").to_pylist()]
    assert sorted(ids) == list(range(1, total + 1))
    assert any("60 skipped, 0 source log lines relayed" in m for m in seen["logged"])


def test_a_wrong_secret_surfaces_in_mage_as_one_error_naming_the_cause(shim, tmp_path_factory, tmp_path):
    if s3s_fs_binary() is None:
        pytest.skip("s3s-fs is not installed (make test installs it)")
    s3s = S3sFsServer(tmp_path_factory.mktemp("s3s"))
    try:
        bucket = s3s.new_bucket()
        config = mage_config(s3s, bucket, aws_secret_access_key="wrong-secret")
        text, _ = mage_input()
        seen = mage(shim, tmp_path, "load", config, text, CATALOG)
        assert list_keys(s3s, bucket) == []
    finally:
        s3s.stop()
    error = seen["exception"]
    assert error and "SignatureDoesNotMatch" in error and "aws_secret_access_key" in error, seen
    assert not error.startswith("Command"), "Mage shows the cause, not the exit status"
    assert "wrong-secret" not in error
    assert seen["returncode"] == 1
    assert seen["source_state"] == {"bookmarks": {}}, "no state for records not stored"


def test_bad_lines_that_are_json_still_fail_in_mage_mode(server, bucket, shim, tmp_path):
    text, _ = mage_input(3)
    broken = text.replace(json.dumps(record(2)), '{"type": "RECORD", "stream": "users", "record": {"id": 2,')
    seen = mage(shim, tmp_path, "load", mage_config(server, bucket), broken)
    assert seen["exception"] and "input line 5" in seen["exception"], seen
    unfit = text.replace('"id": 2,', '"id": "two",')
    seen = mage(shim, tmp_path, "load", mage_config(server, bucket), unfit)
    assert seen["exception"] and "input line 5" in seen["exception"] and '"id"' in seen["exception"], seen


def test_mages_connection_test_needs_bucket_and_credentials_only(server, bucket, shim, tmp_path):
    config = {"aws_access_key_id": "testing-access-key", "aws_secret_access_key": "testing-secret-key",
              "aws_endpoint": server.endpoint, "bucket": bucket, "role_arn": "", "object_key_path": ""}
    seen = mage(shim, tmp_path, "test_connection", config)
    assert seen["returncode"] == 0 and seen["exception"] is None, seen
    seen = mage(shim, tmp_path, "test_connection", {**config, "bucket": "no-such-bucket-here"})
    assert seen["returncode"] == 1
    # Mage masks config values (the bucket's name) in what it shows.
    assert "does not exist (NoSuchBucket)" in seen["exception"], seen
    assert "\n" not in seen["exception"], "the reason alone, not all of stderr"


def test_shim_shows_mages_defaults_and_says_when_target_s3_is_missing(shim):
    script = shim / "mage_integrations" / "destinations" / "amazon_s3" / "__init__.py"
    env = {**clean_env(), "TARGET_S3_BIN": str(BINARY)}
    shown = subprocess.run([str(MAGE_PYTHON), str(script), "--config_json", "{}", "--show_templates"],
                           capture_output=True, env=env, timeout=30)
    template = json.loads(shown.stdout)["config"]
    assert template["file_type"] == "parquet" and template["aws_region"] == "us-west-2"
    env = {**clean_env(), "PATH": "/nonexistent"}
    env.pop("TARGET_S3_BIN", None)
    missing = subprocess.run([str(MAGE_PYTHON), str(script), "--test_connection"], capture_output=True,
                             env=env, timeout=30)
    assert missing.returncode == 127
    line = json.loads(missing.stdout)
    assert line["level"] == "ERROR" and "TARGET_S3_BIN" in line["tags"]["error"]
    assert isinstance(line["timestamp"], float)


def test_outside_mage_mode_lines_that_are_not_json_still_fail(server, bucket, tmp_path):
    text, _ = mage_input(3)
    run = run_target(base_config(server, bucket), text)
    assert run.returncode != 0 and "input line 1" in run.stderr, run.stderr
    # Called as Mage calls, but with Mage mode turned off: as before.
    (tmp_path / "input.txt").write_text(text)
    off = subprocess.run([str(BINARY), "--log_to_stdout", "1", "--input_file_path", str(tmp_path / "input.txt"),
                          "--config_json", json.dumps(base_config(server, bucket, mage_mode=False))],
                         capture_output=True, env=clean_env(), timeout=60)
    assert off.returncode == 1 and b"input line 1: not a JSON object" in off.stderr
    logs = [json.loads(line) for line in off.stdout.decode().splitlines()]
    assert logs and all(isinstance(log["timestamp"], str) for log in logs)
    explicit = run_target(base_config(server, bucket, mage_mode=True), text)
    assert explicit.returncode == 0, explicit.stderr
    [key] = list_keys(server, bucket, "exports/run/users/")
    assert "_mage_created_at" in read_parquet(server, bucket, key).column_names
