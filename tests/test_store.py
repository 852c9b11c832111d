"""Where objects go and what a run leaves behind: a local folder in place of a bucket,
server-side encryption and storage class on every object, overwrite loads that replace
a stream's older objects (and never anything else), and per-run manifests."""

import csv
import io
import json
import os
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fault_proxy import FaultProxy, Rule
from harness import (
    BINARY,
    SAMPLE,
    base_config,
    clean_env,
    get_bytes,
    list_keys,
    read_csv,
    read_parquet,
    run_target,
)
from test_pipeline import singer

PART = 5 * 1024 * 1024
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
UNIQUE = re.compile(r"\d{8}-\d{6}-([0-9a-f]{16})-(\d{5})")
COLUMNS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}


def schema(stream, **extra):
    properties = {**COLUMNS, **extra}
    return json.dumps({"type": "SCHEMA", "stream": stream, "key_properties": ["id"],
                       "schema": {"properties": properties}})


def records(stream, ids):
    return [json.dumps({"type": "RECORD", "stream": stream, "record": {"id": i, "name": f"n{i}"}})
            for i in ids]


def activate(stream, version):
    return json.dumps({"type": "ACTIVATE_VERSION", "stream": stream, "version": version})


def state(value):
    return json.dumps({"type": "STATE", "value": value})


def text(*parts):
    lines = []
    for part in parts:
        lines += [part] if isinstance(part, str) else list(part)
    return "\n".join(lines) + "\n"


def run_id(key):
    return UNIQUE.search(key).group(1)


def data_keys(server, bucket, folder):
    """The data objects under a table folder: not rejected records, not manifests."""
    return [k for k in list_keys(server, bucket, folder) if "/_rejected/" not in k and "/_manifests/" not in k]


def ids_in(server, bucket, folder):
    out = []
    for key in data_keys(server, bucket, folder):
        if key.endswith(".parquet"):
            out += read_parquet(server, bucket, key).column("id").to_pylist()
        else:
            out += [int(row[0]) for row in read_csv(server, bucket, key)[1:]]
    return sorted(out)


def loaded(config, input_text, *args):
    run = run_target(config, input_text, *args)
    assert run.returncode == 0, run.stderr
    return run


# --- local folder ---------------------------------------------------------------------

def local_config(folder, **extra):
    config = {"aws_endpoint": f"file://{folder}", "bucket": "lake", "file_type": "parquet",
              "object_key_path": "exports/run"}
    config.update(extra)
    return config


def files_under(root):
    """Every file under root, hidden ones included, as paths relative to it."""
    out = []
    for folder, _, names in os.walk(root):
        out += [str(Path(folder, n).relative_to(root)) for n in names]
    return sorted(out)


def shape(keys):
    """Keys with their timestamp and run id blanked, sequence kept."""
    return sorted(UNIQUE.sub(lambda m: f"T-R-{m.group(2)}", k) for k in keys)


def test_local_folder_has_the_bucket_layout_and_readable_objects(server, bucket, tmp_path):
    settings = {"date_partition_format": "year=%Y/month=%m", "max_batch_rows": 2}
    in_s3 = loaded(base_config(server, bucket, **settings), SAMPLE)
    folder = tmp_path / "lake-root"
    folder.mkdir()
    local = loaded(local_config(folder, **settings), SAMPLE)

    files = files_under(folder / "lake")
    assert shape(files) == shape(list_keys(server, bucket)), "same keys as in S3"
    assert not [f for f in files if Path(f).name.startswith(".")], "no temporary files left"
    sent = [json.loads(l)["value"] for l in SAMPLE.splitlines() if '"STATE"' in l]
    assert local.states and local.states[-1] == in_s3.states[-1] == sent[-1], "STATE as with S3"
    assert all(s in sent for s in local.states)
    assert "not used" not in local.stderr, "no AWS settings given, none warned about"

    for key in list_keys(server, bucket):
        [twin] = [f for f in files if shape([f]) == shape([key])]
        assert pq.read_table(folder / "lake" / twin).equals(read_parquet(server, bucket, key))
    users = str(folder / "lake/exports/run/users/**/*.parquet")
    con = duckdb.connect()
    got = con.sql(f"SELECT id, name FROM read_parquet('{users}') ORDER BY id").fetchall()
    assert [row[0] for row in got] == [1, 2, 3, 4] and got[0][1] == "Ada Lovelace"


def test_local_objects_appear_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "root"
    folder.mkdir()
    seen = {}
    done = threading.Event()

    def watch():
        while not done.is_set():
            for path in folder.rglob("*.csv"):
                seen.setdefault(path, path.stat().st_size)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        config = local_config(folder, file_type="csv", max_batch_rows=15_000, row_group_bytes=1024 * 1024)
        run = loaded(config, singer(40_000))
    finally:
        done.set()
        watcher.join()
    objects = sorted((folder / "lake/exports/run/s0").glob("*.csv"))
    assert len(objects) == 3 and objects[0].stat().st_size > 3 * 1024 * 1024, "written in many chunks"
    assert seen, "the watcher saw the objects appear"
    for path, size in seen.items():
        assert path.stat().st_size == size, f"{path.name} grew after it appeared"
    ids = []
    for path in objects:
        ids += [int(row[0]) for row in list(csv.reader(io.StringIO(path.read_text(), newline="")))[1:]]
    assert sorted(ids) == list(range(40_000))
    assert files_under(folder) == [str(p.relative_to(folder)) for p in objects]
    assert run.states[-1] == {"at": 40_000}


def test_local_folder_errors_and_connection_check(tmp_path):
    missing = tmp_path / "missing"
    run = run_target(local_config(missing), "not JSON at all\n")
    assert run.returncode == 1 and "does not exist" in run.stderr, run.stderr
    assert "input line" not in run.stderr, "refused before reading input"

    run = run_target(local_config(missing) | {"aws_endpoint": "file://relative/dir"}, "")
    assert run.returncode == 1 and 'key "aws_endpoint"' in run.stderr and "file:///" in run.stderr

    folder = tmp_path / "ok"
    folder.mkdir()
    run = run_target(local_config(folder, object_key_path="a/../../escape"), "not JSON\n")
    assert run.returncode == 1 and '".."' in run.stderr, run.stderr

    checked = run_target(local_config(folder, aws_access_key_id="AKID", aws_secret_access_key="s3cr3t-value",
                                      server_side_encryption="AES256"), "", "--test_connection")
    assert checked.returncode == 0, checked.stderr
    assert "aws_access_key_id, aws_secret_access_key" in checked.stderr and "server_side_encryption" in checked.stderr
    assert "s3cr3t-value" not in checked.stderr
    assert files_under(folder) == [], "the probe leaves nothing behind"
    assert run_target(local_config(missing), "", "--test_connection").returncode == 1


def test_local_folder_overwrite_and_manifest(tmp_path):
    folder = tmp_path / "root"
    folder.mkdir()
    loaded(local_config(folder), text(schema("t"), records("t", range(5)), schema("other"), records("other", [7])))
    before_other = files_under(folder / "lake/exports/run/other")
    run = loaded(local_config(folder, load_method="overwrite", manifest=True),
                 text(schema("t"), records("t", range(100, 103)), state({"n": 1})))
    assert run.states == [{"n": 1}]
    table = folder / "lake/exports/run/t"
    [manifest] = (table / "_manifests").glob("*.json")
    body = json.loads(manifest.read_text())
    files = sorted(p for p in table.glob("*.parquet"))
    assert [e["url"] for e in body["entries"]] == [f"s3://lake/exports/run/t/{p.name}" for p in files]
    assert [e["meta"]["content_length"] for e in body["entries"]] == [p.stat().st_size for p in files]
    read = pa.concat_tables(pq.read_table(p) for p in files)
    assert sorted(read.column("id").to_pylist()) == [100, 101, 102]
    assert {run_id(str(p)) for p in [*files, manifest]} == {body["meta"]["run_id"]}
    assert files_under(folder / "lake/exports/run/other") == before_other


# --- encryption and storage class ----------------------------------------------------

@pytest.mark.parametrize("encryption, key_id, storage_class", [
    ("aws:kms", KMS_KEY, "STANDARD_IA"),
    ("AES256", None, "INTELLIGENT_TIERING"),
])
def test_every_object_carries_encryption_and_storage_class(server, bucket, encryption, key_id, storage_class):
    small = text(schema("small"), records("small", range(3)),
                 json.dumps({"type": "RECORD", "stream": "small", "record": {"id": "not a number"}}))
    config = base_config(server, bucket, file_type="csv", part_size_bytes=PART, manifest=True,
                         invalid_records="quarantine", server_side_encryption=encryption,
                         storage_class=storage_class, **({"kms_key_id": key_id} if key_id else {}))
    loaded(config, small + singer(20_000))
    client = server.client()
    kinds = set()
    for key in list_keys(server, bucket):
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == encryption, key
        assert head.get("SSEKMSKeyId") == key_id, key
        assert head["StorageClass"] == storage_class, key
        multipart = "-" in head["ETag"]
        kinds.add("_rejected" if "/_rejected/" in key else "_manifests" if "/_manifests/" in key else
                  "multipart" if multipart else "single")
    assert kinds == {"single", "multipart", "_rejected", "_manifests"}, kinds


def test_kms_key_id_needs_aws_kms(server, bucket):
    run = run_target(base_config(server, bucket, server_side_encryption="AES256", kms_key_id=KMS_KEY), SAMPLE)
    assert run.returncode == 1 and 'key "kms_key_id"' in run.stderr and '"aws:kms"' in run.stderr
    assert list_keys(server, bucket) == []


# --- overwrite -----------------------------------------------------------------------

FOREIGN = {
    "exports/run/s0.csv": b"a sibling key that merely begins like the folder",
    "exports/run/s0x/other-table.parquet": b"a table whose name begins the same way",
    "exports/elsewhere/s0/x.parquet": b"another prefix",
    "root-object.txt": b"outside every prefix",
}


def test_overwrite_replaces_only_the_streams_own_folder(any_store):
    server, bucket = any_store, any_store.new_bucket()
    first = loaded(base_config(server, bucket, file_type="csv"),
                   text(schema("s0"), records("s0", range(10)), schema("keep"), records("keep", range(5))))
    client = server.client()
    for key, body in FOREIGN.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    kept = list_keys(server, bucket, "exports/run/keep/")
    old = list_keys(server, bucket, "exports/run/s0/")
    client.put_object(Bucket=bucket, Key="exports/run/s0/manual/notes.txt", Body=b"inside the folder")

    lines = [schema("s0"), schema("keep")]
    for n in range(0, 20, 5):
        lines += records("s0", range(1000 + n, 1005 + n)) + [state({"at": n + 5})]
    run = loaded(base_config(server, bucket, file_type="csv", load_method="overwrite", max_batch_rows=5), text(lines))

    assert run.states == [{"at": 20}], "STATE is held until the replacement is done"
    new = list_keys(server, bucket, "exports/run/s0/")
    assert len(new) == 4 and not set(new) & set(old), "older objects, and anything else in the folder, are gone"
    assert {run_id(k) for k in new} != {run_id(k) for k in old} and len({run_id(k) for k in new}) == 1
    assert ids_in(server, bucket, "exports/run/s0/") == list(range(1000, 1020))
    assert list_keys(server, bucket, "exports/run/keep/") == kept, "a stream with no new records is kept"
    for key, body in FOREIGN.items():
        assert get_bytes(server, bucket, key) == body, key
    assert f"{len(old) + 1} older objects deleted" in run.stderr, run.stderr
    assert first.returncode == 0


def test_overwrite_lists_and_deletes_in_pages_of_1000(any_store):
    server, bucket = any_store, any_store.new_bucket()
    client = server.client()
    old = [f"exports/run/s0/old/{n:05}.csv" for n in range(1_205)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"id\r\n1\r\n"), old))
    proxy = FaultProxy(server.port)
    try:
        config = base_config(server, bucket, aws_endpoint=proxy.endpoint, file_type="csv", load_method="overwrite")
        run = loaded(config, text(schema("s0"), records("s0", range(3))))
        requests = list(proxy.seen)
    finally:
        proxy.stop()
    keys = list_keys(server, bucket, "exports/run/s0/")
    assert len(keys) == 1 and run_id(keys[0]), keys
    assert ids_in(server, bucket, "exports/run/s0/") == [0, 1, 2]
    listings = [r for r in requests if r.startswith("GET") and "list-type=2" in r and "prefix=exports%2Frun%2Fs0%2F" in r]
    assert len(listings) == 2 and "continuation-token=" in listings[1], listings
    assert len([r for r in requests if r.startswith("POST") and "delete" in r]) == 2
    assert "1205 older objects deleted" in run.stderr


def test_failed_or_interrupted_overwrite_deletes_nothing(any_store):
    server, bucket = any_store, any_store.new_bucket()
    loaded(base_config(server, bucket), text(schema("s0"), records("s0", range(10))))
    old = list_keys(server, bucket, "exports/run/s0/")
    config = base_config(server, bucket, load_method="overwrite", max_batch_rows=10)

    lines = [schema("s0"), activate("s0", 2)]
    for n in range(0, 50, 10):
        lines += records("s0", range(100 + n, 110 + n)) + [state({"at": n + 10})]
    run = run_target(config, text(lines, "{not json", records("s0", [999])))
    assert run.returncode == 1 and "input line" in run.stderr
    assert run.states == [], "no STATE from a run that did not replace"
    after = list_keys(server, bucket, "exports/run/s0/")
    assert set(old) <= set(after), "older objects are still there"
    assert len(after) == len(old) + 5, "what the failed run stored stays, for the next run to replace"

    with open(os.devnull, "w") as devnull:
        config_path = Path(server.log.name).parent / f"overwrite-{bucket}.json"
        config_path.write_text(json.dumps(config))
        proc = subprocess.Popen([str(BINARY), "--config", str(config_path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=devnull, env=clean_env())
        proc.stdin.write(text(lines).encode())
        proc.stdin.flush()
        deadline = time.time() + 30
        while len(list_keys(server, bucket, "exports/run/s0/")) < len(after) + 5 and time.time() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        # stdin stays open until the target exits: closing it at once would race the
        # signal with the end of input, and a run that reached its end first may finish.
        proc.wait(timeout=60)
        proc.stdin.close()
        out = proc.stdout.read()
    assert proc.returncode == 143
    assert out == b"", "no STATE after a signal"
    assert set(after) <= set(list_keys(server, bucket, "exports/run/s0/"))


def test_activate_version_decides_which_streams_are_replaced(server, bucket):
    streams = ["before", "after", "empty", "idle", "refused"]
    first = []
    for n, stream in enumerate(streams):
        first += [schema(stream), *records(stream, range(n * 10, n * 10 + 3))]
    loaded(base_config(server, bucket, file_type="csv"), text(first))
    old = {s: list_keys(server, bucket, f"exports/run/{s}/") for s in streams}

    second = text(
        schema("before"), activate("before", 2), records("before", [100, 101]),   # as Singer SDK taps send it
        schema("after"), records("after", [200]), activate("after", 2),           # as pipelinewise taps do
        schema("empty"), activate("empty", 2),                                    # a table sent whole, empty
        schema("idle"),                                                           # an incremental run, no change
        schema("refused"), json.dumps({"type": "RECORD", "stream": "refused", "record": {"id": "x"}}),
        activate("ghost", 2),                                                     # no SCHEMA: ignored
        state({"done": True}),
    )
    config = base_config(server, bucket, file_type="csv", load_method="overwrite", manifest=True,
                         invalid_records="skip")
    run = loaded(config, second)
    assert run.states == [{"done": True}]
    assert ids_in(server, bucket, "exports/run/before/") == [100, 101]
    assert ids_in(server, bucket, "exports/run/after/") == [200]
    assert data_keys(server, bucket, "exports/run/empty/") == [], "replaced by an empty table"
    [manifest] = list_keys(server, bucket, "exports/run/empty/")
    body = json.loads(get_bytes(server, bucket, manifest))
    assert body["entries"] == [] and body["meta"]["table_version"] == 2 and body["meta"]["record_count"] == 0
    assert list_keys(server, bucket, "exports/run/idle/") == old["idle"]
    assert list_keys(server, bucket, "exports/run/refused/") == old["refused"]
    assert 'ACTIVATE_VERSION for stream "ghost"' in run.stderr


def test_overwrite_preflight_needs_listing(server, bucket):
    denied = (403, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                   b'<Message>Access Denied</Message><RequestId>x</RequestId></Error>')
    proxy = FaultProxy(server.port, rules=[Rule(r"^GET .*list-type=2", "answer", times=None, answer=denied)])
    try:
        appending = run_target(base_config(server, bucket, aws_endpoint=proxy.endpoint), SAMPLE)
        assert appending.returncode == 0 and "cannot verify access" in appending.stderr
        config = base_config(server, bucket, aws_endpoint=proxy.endpoint, load_method="overwrite")
        run = run_target(config, "not JSON\n")
    finally:
        proxy.stop()
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1 and "preflight" in last, last
    assert "s3:ListBucket" in last and "s3:DeleteObject" in last, last


def test_keys_s3_refuses_to_delete_fail_the_run(server, bucket):
    loaded(base_config(server, bucket), text(schema("s0"), records("s0", range(3))))
    old = list_keys(server, bucket, "exports/run/s0/")
    refused = (200, b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                    b'<Error><Key>' + old[0].encode() + b'</Key><Code>AccessDenied</Code>'
                    b'<Message>Access Denied</Message></Error></DeleteResult>')
    proxy = FaultProxy(server.port, rules=[Rule(r"^POST .*\?delete", "answer", times=None, answer=refused)])
    try:
        config = base_config(server, bucket, aws_endpoint=proxy.endpoint, load_method="overwrite")
        run = run_target(config, text(schema("s0"), records("s0", [7]), state({"at": 1})))
    finally:
        proxy.stop()
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1, run.stderr
    assert old[0] in last and "AccessDenied" in last and "s3:DeleteObject" in last, last
    assert run.states == []


# --- manifests -----------------------------------------------------------------------

def test_manifest_lists_exactly_the_objects_stored(any_store, tmp_path):
    server, bucket = any_store, any_store.new_bucket()
    lines = [schema("orders")] + records("orders", range(1000))
    lines.insert(500, json.dumps({"type": "RECORD", "stream": "orders", "record": {"id": 1.5}}))
    lines += [schema("users"), *records("users", range(3)), state({"at": 1})]
    lines += [schema("users", email={"type": "string"}), *records("users", range(3, 5)), state({"at": 2})]
    config = base_config(server, bucket, manifest=True, max_batch_rows=400, invalid_records="quarantine")
    run = loaded(config, text(lines))
    assert run.states == [{"at": 2}]
    client = server.client()

    [manifest_key] = list_keys(server, bucket, "exports/run/orders/_manifests/")
    manifest = json.loads(get_bytes(server, bucket, manifest_key))
    stored = data_keys(server, bucket, "exports/run/orders/")
    assert len(stored) == 3
    assert [e["url"] for e in manifest["entries"]] == [f"s3://{bucket}/{k}" for k in stored]
    con = duckdb.connect()
    for entry, key in zip(manifest["entries"], stored):
        assert entry["mandatory"] is True
        assert entry["meta"]["content_length"] == client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        path = tmp_path / Path(key).name
        path.write_bytes(get_bytes(server, bucket, key))
        assert entry["meta"]["record_count"] == pq.read_metadata(path).num_rows
        assert entry["meta"]["record_count"] == con.execute(f"SELECT count(*) FROM '{path}'").fetchone()[0]
    assert [e["meta"]["record_count"] for e in manifest["entries"]] == [400, 400, 200]
    files = ", ".join(f"'{tmp_path / Path(k).name}'" for k in stored)
    assert con.execute(f"SELECT count(DISTINCT id), min(id), max(id) FROM read_parquet([{files}])").fetchone() == (1000, 0, 999)
    assert manifest["meta"]["record_count"] == 1000
    assert manifest["meta"]["content_length"] == sum(e["meta"]["content_length"] for e in manifest["entries"])
    assert manifest["schema"] == {"elements": [{"name": "id", "type": {"base": "bigint"}},
                                               {"name": "name", "type": {"base": "string"}}]}
    [rejected] = list_keys(server, bucket, "exports/run/orders/_rejected/")
    assert [r["url"] for r in manifest["meta"]["rejected"]] == [f"s3://{bucket}/{rejected}"]
    assert manifest["meta"]["rejected"][0]["record_count"] == 1
    sequence = lambda k: int(UNIQUE.search(k).group(2))  # noqa: E731
    assert sequence(manifest_key) > max(sequence(k) for k in stored + [rejected]), "written after the objects"
    assert manifest["meta"]["run_id"] == run_id(manifest_key) == run_id(stored[0])

    users = [json.loads(get_bytes(server, bucket, k)) for k in list_keys(server, bucket, "exports/run/users/_manifests/")]
    assert [[el["name"] for el in m["schema"]["elements"]] for m in users] == [["id", "name"], ["id", "name", "email"]]
    assert [m["meta"]["record_count"] for m in users] == [3, 2]
    urls = [e["url"] for m in users for e in m["entries"]]
    assert urls == [f"s3://{bucket}/{k}" for k in data_keys(server, bucket, "exports/run/users/")]


def test_manifest_holds_state_and_a_failed_run_writes_none(server, bucket):
    lines = [schema("s0")]
    for n in range(0, 30, 10):
        lines += records("s0", range(n, n + 10)) + [state({"at": n + 10})]
    config = base_config(server, bucket, manifest=True, max_batch_rows=10)
    run = run_target(config, text(lines, "{broken"))
    assert run.returncode == 1
    assert run.states == [] and list_keys(server, bucket, "exports/run/s0/_manifests/") == []
    assert len(data_keys(server, bucket, "exports/run/s0/")) == 3
