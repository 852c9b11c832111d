"""target-s3 installed the way Python users install plugins: `pip install <checkout>`
in a fresh venv builds the wheel (maturin, the binary inside) and puts `target-s3` on
the venv's PATH, as `uv tool install <checkout>` does on uv's; a fresh Meltano project whose loader has only a `pip_url` (no
`executable:`) gets it with `meltano install` and runs a real tap into it, configured
with our settings or with a crowemi/target-s3 project's config block. The Meltano Hub
definition, hub/target-s3.yml, is kept in step with `--about`.

Building the wheel compiles the binary. The tests build it with the cargo profile and
target folder of the binary under test (TARGET_S3_BIN, else target/release, which `make
test` has just built), so cargo finds every crate built already and each install costs
seconds, not another full release build."""

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from harness import (BINARY, ROOT, VENV_BIN, base_config, build_env, clean_env, list_keys, read_parquet,
                     records_by_stream)

MELTANO = ROOT / ".venv-meltano" / "bin" / "meltano"
HUB = ROOT / "hub" / "target-s3.yml"
VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory):
    """A fresh venv with the checkout installed by pip."""
    venv = tmp_path_factory.mktemp("pip") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    start = time.monotonic()
    run = subprocess.run([*pip, "install", "--quiet", str(ROOT)], env=build_env(), capture_output=True,
                         text=True, timeout=3600)
    assert run.returncode == 0, run.stderr[-3000:]
    print(f"pip install of the checkout took {time.monotonic() - start:.0f} s")
    return venv / "bin"


def test_pip_install_puts_target_s3_on_path(venv_bin):
    found = shutil.which("target-s3", path=str(venv_bin))
    assert found == str(venv_bin / "target-s3")
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"target-s3 {VERSION}"
    shown = subprocess.run([str(venv_bin / "python"), "-m", "pip", "show", "target-s3"], capture_output=True,
                           text=True, check=True)
    assert f"Version: {VERSION}" in shown.stdout


def test_the_installed_target_loads(server, bucket, venv_bin, tmp_path):
    text = (ROOT / "fixtures" / "sample.singer").read_text()
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(server, bucket, object_key_path="pip")))
    env = clean_env()
    env["PATH"] = f"{venv_bin}{os.pathsep}{env['PATH']}"
    run = subprocess.run(["target-s3", "--config", str(config)], input=text, capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    states = [json.loads(line) for line in text.splitlines() if line.strip() and json.loads(line)["type"] == "STATE"]
    assert json.loads(run.stdout.splitlines()[-1]) == states[-1]["value"]
    for stream, records in records_by_stream(text).items():
        keys = list_keys(server, bucket, f"pip/{stream}/")
        assert sum(read_parquet(server, bucket, k).num_rows for k in keys) == len(records), stream


def test_uv_tool_install(tmp_path):
    uv = shutil.which("uv", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not uv:
        pytest.skip("uv is not installed: `make test` installs it (tests/requirements.txt)")
    env = {**build_env(), "UV_TOOL_DIR": str(tmp_path / "tools"), "UV_TOOL_BIN_DIR": str(tmp_path / "bin")}
    run = subprocess.run([uv, "tool", "install", str(ROOT)], env=env, capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stderr[-3000:]
    version = subprocess.run([str(tmp_path / "bin" / "target-s3"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"target-s3 {VERSION}"


def hub_loader(**changes) -> dict:
    """The loader as hub/target-s3.yml defines it, as a meltano.yml plugin entry."""
    hub = yaml.safe_load(HUB.read_text())
    keep = ("name", "namespace", "pip_url", "capabilities", "settings", "settings_group_validation")
    return {**{k: hub[k] for k in keep}, **changes}


def test_hub_definition_is_in_step_with_about():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "hub_definition.py"), str(BINARY)],
                         capture_output=True, text=True, check=True)
    assert run.stdout == HUB.read_text(), "run scripts/hub_definition.py <binary> > hub/target-s3.yml"
    hub = yaml.safe_load(HUB.read_text())
    about = json.loads(subprocess.run([str(BINARY), "--about"], capture_output=True, check=True).stdout)
    assert hub["capabilities"] == about["capabilities"]
    settings = {s["name"]: s for s in hub["settings"]}
    assert list(settings) == [s["name"] for s in about["settings"]]
    assert settings["aws_secret_access_key"]["sensitive"] is True
    assert [o["value"] for o in settings["file_type"]["options"]] == ["csv", "parquet", "jsonl"]
    assert all(s["description"] and s["kind"] for s in hub["settings"])
    assert hub["pip_url"].startswith("git+") and "executable" not in hub_loader()


def meltano(project_dir, *args, env, timeout=600):
    return subprocess.run([str(MELTANO), *args], cwd=project_dir, env=env, capture_output=True, text=True,
                          timeout=timeout)


def crowemi_config(server, bucket) -> dict:
    """The same settings as crowemi/target-s3's users have them in meltano.yml."""
    ours = base_config(server, bucket)
    return {
        "format": {"format_type": "parquet"},
        "cloud_provider": {"cloud_provider_type": "aws", "aws": {
            "aws_access_key_id": ours["aws_access_key_id"], "aws_secret_access_key": ours["aws_secret_access_key"],
            "aws_region": ours["aws_region"], "aws_bucket": bucket, "aws_endpoint_override": server.endpoint}},
        "prefix": "pip-url", "append_date_to_prefix": False,
    }


@pytest.mark.parametrize("settings", ["ours", "crowemi"])
def test_meltano_installs_from_pip_url_and_runs_a_tap(server, bucket, tmp_path, settings):
    if not MELTANO.exists():
        pytest.skip(f"MELTANO IS NOT INSTALLED at {MELTANO}: `make test` installs it")
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"id": i, "name": f"person {i}", "score": i + 0.5} for i in range(1, 6)]
    (data / "people.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    project = {
        "version": 1, "default_environment": "dev", "project_id": "target-s3-pip-url",
        "environments": [{"name": "dev"}],
        "plugins": {
            "extractors": [{
                "name": "tap-jsonl", "namespace": "tap_jsonl", "executable": "tap-jsonl",
                "pip_url": "tap-jsonl==0.3.1",
                "config": {"path": str(data / "*.jsonl"), "stream_name": "people", "primary_keys": ["id"]},
            }],
            "loaders": [hub_loader(pip_url=str(ROOT))],
        },
    }
    (tmp_path / "meltano.yml").write_text(yaml.safe_dump(project))
    env = build_env()
    if settings == "ours":
        for key, value in base_config(server, bucket, object_key_path="pip-url").items():
            env[f"TARGET_S3_{key.upper()}"] = str(value)
    else:
        # A crowemi/target-s3 project switched to this loader keeps its config block.
        project["plugins"]["loaders"][0]["config"] = crowemi_config(server, bucket)
        (tmp_path / "meltano.yml").write_text(yaml.safe_dump(project))
    start = time.monotonic()
    installed = meltano(tmp_path, "install", env=env, timeout=3600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    print(f"meltano install took {time.monotonic() - start:.0f} s")
    plugin_bin = tmp_path / ".meltano" / "loaders" / "target-s3" / "venv" / "bin" / "target-s3"
    assert plugin_bin.exists(), installed.stderr[-2000:]
    run = meltano(tmp_path, "run", "tap-jsonl", "target-s3", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    [key] = list_keys(server, bucket, "pip-url/people/")
    got = sorted(({k: r[k] for k in ("id", "name", "score")} for r in read_parquet(server, bucket, key).to_pylist()),
                 key=lambda r: r["id"])
    assert got == rows
    state = meltano(tmp_path, "state", "get", "dev:tap-jsonl-to-target-s3", env=env)
    assert state.returncode == 0, state.stderr[-2000:]
    bookmarks = json.loads(state.stdout)["singer_state"]
    assert "people" in json.dumps(bookmarks), bookmarks
