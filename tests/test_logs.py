"""What target-s3 says on stderr: quiet by default (one INFO line per object and the
closing summary), the summary kept when only warnings are asked for, and log lines as
Meltano reads them."""
import json
import subprocess
import time

from harness import BINARY, base_config, clean_env, list_keys, run_target

COUNTRIES = ["DE", "FR", "DE", "US", "FR", "NL", "DE"]


def orders(countries=COUNTRIES, state=True) -> str:
    lines = [{"type": "SCHEMA", "stream": "orders", "key_properties": ["id"],
              "schema": {"properties": {"id": {"type": "integer"}, "country": {"type": "string"}}}}]
    lines += [{"type": "RECORD", "stream": "orders", "record": {"id": n, "country": c}}
              for n, c in enumerate(countries)]
    if state:
        lines.append({"type": "STATE", "value": {"at": len(countries)}})
    return "".join(json.dumps(line) + "\n" for line in lines)


def levels(stderr: str) -> list[tuple[str, str]]:
    """(level, message) of each text log line: `<timestamp> <LEVEL> <message>`."""
    out = []
    for line in stderr.splitlines():
        parts = line.split(None, 2)
        assert len(parts) == 3 and parts[0][:4].isdigit(), line
        out.append((parts[1], parts[2]))
    return out


def test_partitioned_load_prints_one_info_line_per_object_and_the_summary(server, bucket):
    config = base_config(server, bucket, partition_by=["country"], file_type="csv")
    run = run_target(config, orders())
    assert run.returncode == 0, run.stderr
    objects = list_keys(server, bucket)
    assert len(objects) == 4, objects
    lines = levels(run.stderr)
    info = [m for level, m in lines if level == "INFO"]
    # One line at the start says what the store's integrity settings came to.
    assert info[0] == "store: conditional writes on, checksums none", info[0]
    assert len(info) <= len(objects) + 2, run.stderr
    assert info[-1] == ("done: 7 records in 4 objects, 1 STATE line written, 0 invalid records skipped, "
                        "0 quarantined, 0 manifests, 0 older objects deleted"), info[-1]
    assert not any("METRIC" in m for _, m in lines), run.stderr


def test_summary_is_shown_with_warnings_only_and_hidden_with_errors_only(server, bucket):
    config = base_config(server, bucket, file_type="csv")
    warn = run_target(config, orders(["DE"], state=False), env={"RUST_LOG": "warn"})
    assert warn.returncode == 0, warn.stderr
    assert levels(warn.stderr) == [("INFO", "done: 1 record in 1 object, 0 STATE lines written, 0 invalid records "
                                            "skipped, 0 quarantined, 0 manifests, 0 older objects deleted")]
    quiet = run_target(config, orders(["DE"]), env={"RUST_LOG": "error"})
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_progress_lines_give_the_rate_of_the_last_interval(server, bucket, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(server, bucket, file_type="csv", progress_interval_seconds=1)))
    proc = subprocess.Popen([str(BINARY), "--config", str(config)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    lines = orders(["DE"] * 12).splitlines(keepends=True)
    proc.stdin.write(lines[0].encode())
    for line in lines[1:]:  # about 3 records a second for 4 seconds, a pause after each
        proc.stdin.write(line.encode())
        proc.stdin.flush()
        time.sleep(0.3)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    progress = [m for _, m in levels(err.decode()) if m.startswith("progress: ")]
    assert progress, err
    for line in progress:
        assert "/s in the last 1 s)" in line and not line.rstrip().endswith((";", ",")), line
        rate = int(line.split("(", 1)[1].split("/s", 1)[0])
        assert 1 <= rate <= 6, line
