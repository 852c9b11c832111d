"""Fitting in: --about and --version, settings from the environment, and the flags
and keys Mage passes to a destination."""

import json
import subprocess

from harness import BINARY, base_config, clean_env, list_keys, read_parquet

SAMPLE = open(__file__.replace("tests/test_ecosystem.py", "fixtures/sample.singer")).read()
LAST_STATE = [json.loads(l)["value"] for l in SAMPLE.splitlines() if '"STATE"' in l][-1]


def target(*args, input_text="", env=None):
    return subprocess.run([str(BINARY), *args], input=input_text.encode(), capture_output=True,
                          env={**clean_env(), **(env or {})}, timeout=120)


def test_about_lists_every_setting_with_type_default_and_secrecy():
    about = json.loads(target("--about").stdout)
    assert about["name"] == "target-s3" and about["version"]
    settings = {s["name"]: s for s in about["settings"]}
    assert settings["aws_secret_access_key"]["secret"] is True
    assert settings["file_type"]["required"] is True
    assert settings["bucket"]["required"] is False  # not with table_format iceberg
    assert settings["file_type"]["allowed_values"] == ["csv", "parquet", "jsonl"]
    assert settings["max_batch_rows"]["default"] == "1000000"
    readme = open(__file__.replace("tests/test_ecosystem.py", "README.md")).read()
    for name in settings:
        assert f"| `{name}` |" in readme, name
    markdown = target("--about", "--format", "markdown").stdout.decode()
    assert "| `aws_secret_access_key` | string | no |  | yes |" in markdown
    version = target("--version")
    assert version.returncode == 0 and version.stdout.decode().startswith("target-s3 ")


def test_settings_from_the_environment(server, bucket):
    env = {f"TARGET_S3_{k.upper()}": str(v) for k, v in base_config(server, bucket).items()}
    env["TARGET_S3_FILE_TYPE"] = "csv"
    run = target("--config", "ENV", input_text=SAMPLE, env=env)
    assert run.returncode == 0, run.stderr
    assert list_keys(server, bucket, "exports/run/users/")[0].endswith(".csv")


def test_mage_flags_config_json_input_file_and_state_file(server, bucket, tmp_path):
    config = base_config(server, bucket, table="customers", date_partition_format="%Y%m%d")
    config["column_header_format"] = None
    (tmp_path / "in.singer").write_text(SAMPLE)
    state = tmp_path / "state.json"
    run = target("--config_json", json.dumps(config), "--input_file_path", str(tmp_path / "in.singer"),
                 "--state", str(state), "--settings", "{}", "--catalog_json", "{}")
    assert run.returncode == 0, run.stderr
    assert run.stdout == b""
    assert json.loads(state.read_text()) == LAST_STATE
    keys = list_keys(server, bucket, "exports/run/customers/")
    assert len(keys) == 2, "both streams land under the table Mage names"
    assert sum(read_parquet(server, bucket, k).num_rows for k in keys) == 7


def test_mage_log_to_stdout_gives_json_log_lines(server, bucket, tmp_path):
    state = tmp_path / "state.json"
    run = target("--config_json", json.dumps(base_config(server, bucket)), "--log_to_stdout", "1",
                 "--state", str(state), input_text=SAMPLE)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(l) for l in run.stdout.decode().splitlines()]
    assert lines and all(l["type"] == "LOG" and l["level"] and "timestamp" in l for l in lines)
    assert any("done:" in l["message"] for l in lines)
    assert json.loads(state.read_text()) == LAST_STATE


def test_mage_test_connection_and_templates(server, bucket):
    good = target("--config_json", json.dumps(base_config(server, bucket)), "--test_connection")
    assert good.returncode == 0, good.stderr
    bad = target("--config_json", json.dumps(base_config(server, "no-such-bucket-here")), "--test_connection")
    assert bad.returncode == 1 and b"does not exist" in bad.stderr
    template = json.loads(target("--show_templates").stdout)
    assert template["config"]["bucket"] is None and template["config"]["max_batch_rows"] == 1000000


def test_json_log_format_on_stderr(server, bucket):
    run = target("--config_json", json.dumps(base_config(server, bucket)), "--log-format", "json",
                 input_text=SAMPLE)
    assert run.returncode == 0
    logs = [json.loads(l) for l in run.stderr.decode().splitlines()]
    assert any(l["level"] == "info" for l in logs)
    # The Singer SDK's structured form, every field Meltano's parser requires.
    sdk_fields = {"level", "pid", "logger_name", "ts", "thread_name", "app_name", "message"}
    assert all(sdk_fields <= set(l) and isinstance(l["ts"], float) for l in logs), logs
    assert [json.loads(l) for l in run.stdout.decode().splitlines()][-1] == LAST_STATE


def test_log_format_setting_makes_warnings_and_the_error_json_lines(server, bucket):
    config = base_config(server, "no-such-bucket-here", log_format="JSON", no_such_setting=1)
    run = target("--config_json", json.dumps(config), input_text=SAMPLE)
    assert run.returncode == 1
    logs = [json.loads(l) for l in run.stderr.decode().splitlines()]
    assert [(l["level"], l["app_name"]) for l in logs] == [("warning", "target-s3"), ("error", "target-s3")], logs
    assert "no_such_setting" in logs[0]["message"] and "does not exist" in logs[1]["message"], logs
    text = target("--config_json", json.dumps(config), "--log-format", "text", input_text=SAMPLE)
    assert text.stderr.decode().splitlines()[-1].startswith("target-s3: error: store: preflight:"), text.stderr
    silent = target("--config_json", json.dumps(config), input_text=SAMPLE, env={"RUST_LOG": "off"})
    assert silent.stderr.decode().startswith("target-s3: error: store: preflight:"), "logs off: still the error"
    wrong = target("--config_json", json.dumps({**config, "log_format": "xml"}), input_text=SAMPLE)
    assert wrong.returncode == 1 and b'"log_format"' in wrong.stderr and b"text" in wrong.stderr, wrong.stderr


def test_metric_lines_per_object(server, bucket):
    run = target("--config_json", json.dumps(base_config(server, bucket)), input_text=SAMPLE,
                 env={"RUST_LOG": "info,target_s3::metrics=debug"})
    assert run.returncode == 0, run.stderr
    metrics = [json.loads(l.split("METRIC: ", 1)[1]) for l in run.stderr.decode().splitlines() if "METRIC: " in l]
    counts = {m["tags"]["stream"]: m["value"] for m in metrics if m["metric"] == "record_count"}
    assert counts == {"users": 4, "orders": 3}
    timers = [m for m in metrics if m["metric"] == "upload_duration"]
    assert len(timers) == 2 and all(m["type"] == "timer" and m["tags"]["status"] == "succeeded" for m in timers)
    sizes = [m["value"] for m in metrics if m["metric"] == "batch_size_bytes"]
    assert len(sizes) == 2 and all(v > 100 for v in sizes)


def test_meltano_yml_declares_every_setting():
    import yaml

    about = json.loads(target("--about").stdout)
    project = yaml.safe_load(open(__file__.replace("tests/test_ecosystem.py", "meltano.yml")))
    [loader] = project["plugins"]["loaders"]
    assert loader["name"] == "target-s3"
    declared = {s["name"]: s for s in loader["settings"]}
    assert set(declared) == {s["name"] for s in about["settings"]}, "run scripts/meltano_yml.py"
    assert declared["aws_secret_access_key"]["kind"] == "password"


def test_progress_lines_on_long_runs(server, bucket, tmp_path):
    import time

    config = tmp_path / "c.json"
    config.write_text(json.dumps(base_config(server, bucket, progress_interval_seconds=1)))
    proc = subprocess.Popen([str(BINARY), "--config", str(config)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    lines = SAMPLE.splitlines(keepends=True)
    for line in lines[:6]:
        proc.stdin.write(line.encode())
    proc.stdin.flush()
    time.sleep(2.5)
    proc.stdin.write("".join(lines[6:]).encode())
    proc.stdin.close()
    proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    assert proc.returncode == 0, err
    progress = [l for l in err.splitlines() if "progress:" in l]
    assert progress, err
    assert "records (" in progress[0] and "users " in progress[0] and " bytes" in progress[0]
