"""A real `meltano run` of a tap from PyPI (tap-jsonl, reading local files) into
target-s3 against the local S3 server: the objects hold the tap's records, and Meltano
stores the STATE target-s3 acknowledged."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import BINARY, ROOT, base_config, build_env, clean_env, list_keys, read_parquet

MELTANO = ROOT / ".venv-meltano" / "bin" / "meltano"


@pytest.fixture
def project(tmp_path):
    if not MELTANO.exists():
        pytest.skip(f"MELTANO IS NOT INSTALLED at {MELTANO}: `make test` installs it")
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"id": i, "name": f"person {i}", "score": i + 0.5, "active": i % 2 == 0} for i in range(1, 8)]
    (data / "people.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ours = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["loaders"][0]
    ours["executable"] = str(BINARY)
    ours.pop("config", None)
    config = {
        "version": 1,
        "default_environment": "dev",
        "project_id": "target-s3-test",
        "environments": [{"name": "dev"}],
        "plugins": {
            "extractors": [{
                "name": "tap-jsonl", "namespace": "tap_jsonl", "executable": "tap-jsonl",
                "pip_url": "tap-jsonl==0.3.1",
                "config": {"path": str(data / "*.jsonl"), "stream_name": "people", "primary_keys": ["id"]},
            }],
            "loaders": [ours],
        },
    }
    (tmp_path / "meltano.yml").write_text(yaml.safe_dump(config))
    return tmp_path, rows


def meltano(project_dir, *args, env):
    return subprocess.run([str(MELTANO), *args], cwd=project_dir, env=env, capture_output=True, text=True,
                          timeout=600)


def test_meltano_run_loads_and_stores_state(server, bucket, project):
    project_dir, rows = project
    env = clean_env()
    for key, value in base_config(server, bucket, object_key_path="meltano").items():
        env[f"TARGET_S3_{key.upper()}"] = str(value)
    installed = meltano(project_dir, "install", env=env)
    assert installed.returncode == 0, installed.stderr[-2000:]
    run = meltano(project_dir, "run", "tap-jsonl", "target-s3", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    [key] = list_keys(server, bucket, "meltano/people/")
    table = read_parquet(server, bucket, key)
    got = sorted(({k: r[k] for k in ("id", "name", "score", "active")} for r in table.to_pylist()),
                 key=lambda r: r["id"])
    assert got == rows
    state = meltano(project_dir, "state", "get", "dev:tap-jsonl-to-target-s3", env=env)
    assert state.returncode == 0, state.stderr[-2000:]
    stored = json.loads(state.stdout)
    assert "people" in json.dumps(stored["singer_state"]), stored


@pytest.fixture
def loader_only(tmp_path):
    """A Meltano project with target-s3 alone, declared as the repository's meltano.yml does."""
    if not MELTANO.exists():
        pytest.skip(f"MELTANO IS NOT INSTALLED at {MELTANO}: `make test` installs it")
    ours = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["loaders"][0]
    ours["executable"] = str(BINARY)
    ours.pop("config", None)
    config = {"version": 1, "default_environment": "dev", "project_id": "target-s3-settings",
              "environments": [{"name": "dev"}], "plugins": {"loaders": [ours]}}
    (tmp_path / "meltano.yml").write_text(yaml.safe_dump(config))
    return tmp_path


ORDERS = "".join(json.dumps(m) + "\n" for m in [
    {"type": "SCHEMA", "stream": "orders", "key_properties": ["id"],
     "schema": {"properties": {"id": {"type": "integer"}, "country": {"type": "string"},
                               "amount": {"type": "string"}}}},
    *({"type": "RECORD", "stream": "orders", "record": {"id": n, "country": c, "amount": f"{n}.25"}}
      for n, c in enumerate(["DE", "FR", "DE", "US", "FR", "NL", "DE"])),
])


def invoke(project_dir, env, text=ORDERS):
    return subprocess.run([str(MELTANO), "invoke", "target-s3"], cwd=project_dir, env=env, input=text,
                          capture_output=True, text=True, timeout=600)


def server_env(server, bucket, prefix):
    env = clean_env()
    for key, value in base_config(server, bucket, object_key_path=prefix, file_type="csv").items():
        env[f"TARGET_S3_{key.upper()}"] = str(value)
    return env


def folders(server, bucket, prefix):
    return sorted({key.split("/")[2] for key in list_keys(server, bucket, prefix + "/")})


@pytest.mark.parametrize("value", ['{"orders": ["country"]}', '["country"]'])
def test_partition_by_set_with_meltano_config_set_partitions_the_run(server, bucket, loader_only, value):
    env = server_env(server, bucket, "set")
    set_ = meltano(loader_only, "config", "set", "target-s3", "partition_by", value, env=env)
    assert set_.returncode == 0, set_.stderr[-2000:]
    run = invoke(loader_only, env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert folders(server, bucket, "set/orders") == ["country_part=DE", "country_part=FR", "country_part=NL",
                                                     "country_part=US"]


def test_partition_by_and_column_types_from_meltano_environment_variables(server, bucket, loader_only):
    env = server_env(server, bucket, "env")
    env["TARGET_S3_PARTITION_BY"] = '{"orders": ["country"]}'
    env["TARGET_S3_COLUMN_TYPES"] = '{"orders": {"amount": "decimal(10,2)"}}'
    env["TARGET_S3_VALIDATE_RECORDS"] = "false"
    env["TARGET_S3_FILE_TYPE"] = "parquet"
    listed = meltano(loader_only, "config", "list", "target-s3", env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    run = invoke(loader_only, env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert folders(server, bucket, "env/orders") == ["country_part=DE", "country_part=FR", "country_part=NL",
                                                     "country_part=US"]
    [key] = list_keys(server, bucket, "env/orders/country_part=NL/")
    table = read_parquet(server, bucket, key)
    assert str(table.schema.field("amount").type) == "decimal128(10, 2)"
    assert [str(v) for v in table.column("amount").to_pylist()] == ["5.25"]


TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def meltano_lines(stderr: str, needle: str) -> list[str]:
    return [line for line in stderr.splitlines() if needle in line]


def test_meltano_run_shows_target_warnings_and_errors_at_their_levels(server, bucket, project):
    project_dir, rows = project
    path = project_dir / "meltano.yml"
    config = yaml.safe_load(path.read_text())
    config["plugins"]["loaders"][0]["config"] = {"no_such_setting": 1}
    path.write_text(yaml.safe_dump(config))
    env = clean_env()
    for key, value in base_config(server, "no-such-bucket-here", object_key_path="meltano").items():
        env[f"TARGET_S3_{key.upper()}"] = str(value)
    env["TARGET_S3_LOG_FORMAT"] = "json"
    installed = meltano(project_dir, "install", env=env)
    assert installed.returncode == 0, installed.stderr[-2000:]
    run = meltano(project_dir, "run", "tap-jsonl", "target-s3", env=env)
    assert run.returncode != 0
    [warning] = meltano_lines(run.stderr, 'unknown key "no_such_setting"')
    assert "[warning" in warning and "[info" not in warning, warning
    [error] = meltano_lines(run.stderr, 'bucket "no-such-bucket-here" does not exist')
    assert "[error" in error and "[info" not in error, error
    for line in (warning, error):
        assert len(TIMESTAMP.findall(line)) == 1, line
    assert "target-s3: error:" not in error, "the level says it already"
    env.pop("TARGET_S3_LOG_FORMAT")  # text: Meltano's timestamp only, the level in the text
    text = meltano(project_dir, "run", "tap-jsonl", "target-s3", env=env)
    assert text.returncode != 0
    [warning] = meltano_lines(text.stderr, 'unknown key "no_such_setting"')
    assert "WARN config: unknown key" in warning and len(TIMESTAMP.findall(warning)) == 1, warning


def test_meltano_config_test_leaves_nothing_behind(server, bucket, loader_only):
    env = server_env(server, bucket, "probe")
    # Meltano 4.4 then fails in its own clean-up (it terminates the ended process), so
    # its verdict is not looked at; the target's own lines are (at Meltano's debug level).
    tested = meltano(loader_only, "--log-level=debug", "config", "test", "target-s3", env=env)
    said = tested.stdout + tested.stderr
    assert 'stream \\"meltano_test_stream\\" was stored (s3://' in said or \
        'stream "meltano_test_stream" was stored (s3://' in said, said[-3000:]
    assert "deleted again; nothing is left behind" in said, said[-3000:]
    assert list_keys(server, bucket) == [], "the probe object is deleted again"


def test_readme_meltano_block_works_in_a_fresh_project(server, bucket, tmp_path):
    if not MELTANO.exists():
        pytest.skip(f"MELTANO IS NOT INSTALLED at {MELTANO}: `make test` installs it")
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### With Meltano", 1)[1]
    block = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    [loader] = block["plugins"]["loaders"]
    ours = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["loaders"][0]
    assert loader["capabilities"] == ours["capabilities"]
    # The block installs from pip_url, with no executable: here from this checkout.
    assert loader["pip_url"].startswith("git+") and "executable" not in loader
    loader["pip_url"] = str(ROOT)
    loader["settings"] = ours["settings"]
    assert loader["config"]["log_format"] == "json"
    project = {"version": 1, "default_environment": "dev", "project_id": "target-s3-readme",
               "environments": [{"name": "dev"}], **block}
    (tmp_path / "meltano.yml").write_text(yaml.safe_dump(project))
    env = {**server_env(server, bucket, "readme"), **build_env()}
    del env["TARGET_S3_FILE_TYPE"]  # the block's parquet
    installed = meltano(tmp_path, "install", env=env)
    assert installed.returncode == 0, installed.stderr[-2000:]
    run = invoke(tmp_path, env)
    assert run.returncode == 0, run.stderr[-3000:]
    [key] = list_keys(server, bucket, "readme/orders/")
    assert read_parquet(server, bucket, key).num_rows == 7
    # log_format json with structured-logging: Meltano parsed the lines and shows their text.
    [done] = meltano_lines(run.stderr, "done: 7 records")
    assert "[info" in done and '"level"' not in run.stderr, run.stderr
