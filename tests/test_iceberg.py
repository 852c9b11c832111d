"""Iceberg tables (`table_format: iceberg`) in a real REST catalog (SeaweedFS's), read
back by pyiceberg and by polars' own Parquet reader over pyiceberg's metadata."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
import uuid
from decimal import Decimal

import pytest

from harness import BINARY, SeaweedServer, clean_env, list_keys, run_target

pytest.importorskip("pyiceberg")

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "price": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1e10, "minimum": -1e10},
        "ratio": {"type": ["null", "number"]},
        "active": {"type": ["null", "boolean"]},
        "born": {"type": ["null", "string"], "format": "date"},
        "updated_at": {"type": ["null", "string"], "format": "date-time"},
        "tags": {"type": ["null", "array"], "items": {"type": "string"}},
        "address": {"type": ["null", "object"], "properties": {
            "city": {"type": ["null", "string"]}, "zip": {"type": ["null", "integer"]}}},
    },
}

EDGE = [
    {"id": -9223372036854775808, "name": "", "price": -99999999.99, "ratio": -0.0, "active": False,
     "born": "0001-01-01", "updated_at": "0001-01-01T00:00:00Z", "tags": [], "address": {"city": None, "zip": 0}},
    {"id": 9223372036854775807, "name": "naïve ☃ 𝄞", "price": 99999999.99, "ratio": 1.7976931348623157e308,
     "active": True, "born": "9999-12-31", "updated_at": "9999-12-31T23:59:59.999999Z",
     "tags": ["a", "b"], "address": {"city": "Zürich", "zip": 8001}},
    {"id": 0, "name": None, "price": None, "ratio": None, "active": None, "born": None,
     "updated_at": None, "tags": None, "address": None},
]


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


def namespace() -> str:
    return f"ns_{uuid.uuid4().hex[:8]}"


def singer(records: list[dict], stream: str = "public-users", schema: dict = SCHEMA,
           state_every: int = 0) -> str:
    lines = [json.dumps({"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": ["id"]})]
    for i, record in enumerate(records, 1):
        lines.append(json.dumps({"type": "RECORD", "stream": stream, "record": record}))
        if state_every and i % state_every == 0:
            lines.append(json.dumps({"type": "STATE", "value": {"done": i}}))
    lines.append(json.dumps({"type": "STATE", "value": {"done": len(records)}}))
    return "\n".join(lines) + "\n"


def schema_with(**properties) -> dict:
    """SCHEMA with properties added or changed."""
    return dict(SCHEMA, properties={**SCHEMA["properties"], **properties})


def many(n: int, start: int = 0) -> list[dict]:
    return [{"id": i, "name": f"user {i}", "price": round(i * 0.25, 2), "ratio": i / 7,
             "active": i % 2 == 0, "born": "2000-01-02", "updated_at": "2024-03-01T12:00:00Z",
             "tags": [str(i)], "address": {"city": "c", "zip": i}} for i in range(start, start + n)]


def rows(seaweed, table: str) -> list[dict]:
    return sorted(seaweed.catalog().load_table(table).scan().to_arrow().to_pylist(), key=lambda r: r["id"])


def assert_edge_rows(low: dict, zero: dict, high: dict, table) -> None:
    """The lowest, zero and highest rows of the edge values, read back through pyiceberg,
    and the table's types."""
    assert low["id"] == -9223372036854775808 and high["id"] == 9223372036854775807
    assert low["price"] == Decimal("-99999999.99") and high["price"] == Decimal("99999999.99")
    assert str(low["ratio"]) == "-0.0" and high["ratio"] == 1.7976931348623157e308
    assert low["born"] == dt.date(1, 1, 1) and high["born"] == dt.date(9999, 12, 31)
    assert low["updated_at"] == dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)
    assert high["updated_at"] == dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
    assert high["name"] == "naïve ☃ 𝄞" and low["name"] == ""
    assert low["tags"] == [] and high["tags"] == ["a", "b"]
    assert high["address"] == {"city": "Zürich", "zip": 8001}
    assert zero == {k: (0 if k == "id" else None) for k in SCHEMA["properties"]}
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types["id"] == "long" and types["price"] == "decimal(13, 2)"
    assert types["updated_at"] == "timestamptz" and types["born"] == "date"


def test_edge_values_land_in_a_table_that_two_readers_read_exactly(seaweed):
    ns = namespace()
    run = run_target(seaweed.iceberg_config(ns, iceberg_commit_interval_seconds=0), singer(EDGE))
    assert run.returncode == 0, run.stderr
    assert run.states == [{"done": 3}]
    table = seaweed.catalog().load_table(f"{ns}.public_users")
    got = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    low, zero, high = got
    assert low["id"] == -9223372036854775808 and high["id"] == 9223372036854775807
    assert_edge_rows(low, zero, high, table)
    # The second reader: polars reads the data files with its own Parquet reader.
    import polars as pl

    frame = pl.scan_iceberg(table, storage_options=seaweed.object_store_options()).collect().sort("id")
    assert frame["id"].to_list() == [r["id"] for r in got]
    assert frame["name"].to_list() == [r["name"] for r in got]
    assert frame["updated_at"].to_list()[2].year == 9999


def test_commits_carry_the_state_they_make_safe_and_files_carry_stats(seaweed):
    ns = namespace()
    config = seaweed.iceberg_config(ns, iceberg_commit_interval_seconds=0, max_batch_rows=1000)
    run = run_target(config, singer(many(3500), state_every=500))
    assert run.returncode == 0, run.stderr
    table = seaweed.catalog().load_table(f"{ns}.public_users")
    snapshots = table.metadata.snapshots
    # Objects stored together commit together: at least the end's commit, and every
    # snapshot names a STATE its rows cover (never one past them).
    assert snapshots
    for snapshot in snapshots:
        state = json.loads(snapshot.summary["singer.state"])
        assert state["done"] <= int(snapshot.summary["total-records"])
        assert len(snapshot.summary["singer.run-id"]) == 16
    assert json.loads(snapshots[-1].summary["singer.state"]) == {"done": 3500}
    assert len({s.summary["singer.run-id"] for s in snapshots}) == 1
    # STATE lines only ever follow a commit that covers them.
    assert run.states[-1] == {"done": 3500}
    committed = [json.loads(s.summary["singer.state"])["done"] for s in snapshots]
    assert all(state["done"] <= max(committed) for state in run.states)
    files = list(table.inspect.files().to_pylist())
    assert sorted(f["record_count"] for f in files) == [500, 1000, 1000, 1000]
    first = min(files, key=lambda f: f["lower_bounds"] and f["readable_metrics"]["id"]["lower_bound"])
    assert first["readable_metrics"]["id"]["lower_bound"] == 0
    assert first["readable_metrics"]["id"]["upper_bound"] == 999
    assert first["null_value_counts"]
    # Pruning works: a filter on id reads one file.
    scan = table.scan(row_filter="id >= 3200")
    assert len(list(scan.plan_files())) == 1
    assert scan.to_arrow().num_rows == 300


def test_a_second_run_appends_and_a_new_property_becomes_a_column(seaweed):
    ns = namespace()
    config = seaweed.iceberg_config(ns)
    assert run_target(config, singer(many(10))).returncode == 0
    schema = schema_with(email={"type": ["null", "string"]})
    later = [dict(r, email=f"{r['id']}@x") for r in many(5, start=10)]
    run = run_target(config, singer(later, schema=schema))
    assert run.returncode == 0, run.stderr
    got = rows(seaweed, f"{ns}.public_users")
    assert [r["id"] for r in got] == list(range(15))
    assert [r["email"] for r in got] == [None] * 10 + [f"{i}@x" for i in range(10, 15)]
    table = seaweed.catalog().load_table(f"{ns}.public_users")
    assert len(table.metadata.snapshots) == 2


def test_an_incompatible_change_stops_naming_stream_and_column(seaweed):
    ns = namespace()
    config = seaweed.iceberg_config(ns)
    assert run_target(config, singer(many(3))).returncode == 0
    schema = schema_with(name={"type": ["null", "integer"]})
    run = run_target(config, singer([{"id": 7, "name": 5}], schema=schema))
    assert run.returncode != 0
    assert "name" in run.stderr and "public-users" in run.stderr, run.stderr
    assert run.states == []
    assert len(rows(seaweed, f"{ns}.public_users")) == 3


def test_killed_between_upload_and_commit_leaves_the_table_unchanged(seaweed, tmp_path):
    ns = namespace()
    config = seaweed.iceberg_config(ns, iceberg_commit_interval_seconds=3600, max_batch_rows=500)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    text = singer(many(2000), state_every=500)
    lines = text.splitlines(keepends=True)
    proc = subprocess.Popen([str(BINARY), "--config", str(config_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    # Everything but the last STATE: objects of 500 rows are stored, none committed
    # (the interval is an hour), so no STATE may be written.
    proc.stdin.write("".join(lines[:-1]).encode())
    proc.stdin.flush()
    s3 = seaweed.client()
    deadline = time.time() + 60
    while time.time() < deadline:
        listed = s3.list_objects_v2(Bucket=seaweed.warehouse, Prefix=f"{ns}/public_users/data/")
        if listed.get("KeyCount", 0) >= 3:
            break
        time.sleep(0.2)
    else:
        pytest.fail("no data files were stored")
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    assert out == b""
    table = seaweed.catalog().load_table(f"{ns}.public_users")
    assert table.current_snapshot() is None
    # A rerun from the last STATE (none: from the start) lands every record once.
    run = run_target(config, text)
    assert run.returncode == 0, run.stderr
    assert [r["id"] for r in rows(seaweed, f"{ns}.public_users")] == list(range(2000))


def two_writers(config: dict, tmp_path) -> list[tuple[int, bytes, bytes]]:
    """Two target-s3 processes appending 1,000 records each (ids from 1000 and from
    5000) to one table at once, fed in five pieces so their commits interleave and
    race; both must exit 0. Config: a commit after every flush of 200 rows. Returns
    each process's exit code, stdout and stderr."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    procs = []
    for start in (1000, 5000):
        proc = subprocess.Popen([str(BINARY), "--config", str(config_path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        procs.append(proc)
    texts = [singer(many(1000, start=start), state_every=200).splitlines(keepends=True)
             for start in (1000, 5000)]
    for piece in range(5):
        for proc, lines in zip(procs, texts):
            part = lines[1 + piece * 201:1 + (piece + 1) * 201] if piece else lines[:202]
            proc.stdin.write("".join(part).encode())
            proc.stdin.flush()
        time.sleep(0.5)
    outcomes = []
    for proc, lines in zip(procs, texts):
        proc.stdin.write("".join(lines[1 + 5 * 201:]).encode())
        proc.stdin.close()
    for proc in procs:
        out = proc.stdout.read()
        err = proc.stderr.read()
        outcomes.append((proc.wait(timeout=120), out, err))
    for code, _, err in outcomes:
        assert code == 0, err.decode()
    return outcomes


def test_two_writers_at_once_both_commit(seaweed, tmp_path):
    ns = namespace()
    config = seaweed.iceberg_config(ns, iceberg_commit_interval_seconds=0, max_batch_rows=200)
    # The table exists first, as when a load is spread over machines.
    assert run_target(config, singer(many(1))).returncode == 0
    two_writers(config, tmp_path)
    ids = [r["id"] for r in rows(seaweed, f"{ns}.public_users")]
    assert ids == [0] + list(range(1000, 2000)) + list(range(5000, 6000))
    table = seaweed.catalog().load_table(f"{ns}.public_users")
    assert len(table.metadata.snapshots) >= 5


def test_catalog_errors_name_the_catalog_and_never_the_secret(seaweed):
    config = seaweed.iceberg_config(namespace(), iceberg_credential="wrong:not-the-secret-xyz")
    run = run_target(config, singer(many(1)))
    assert run.returncode != 0
    assert seaweed.catalog_uri in run.stderr, run.stderr
    assert "not-the-secret-xyz" not in run.stderr
    assert run.states == []


def test_iceberg_settings_are_checked_at_start(seaweed):
    config = seaweed.iceberg_config(namespace())
    del config["iceberg_namespace"]
    run = run_target(config, singer(many(1)))
    assert run.returncode != 0 and "iceberg_namespace" in run.stderr
    run = run_target(dict(seaweed.iceberg_config(namespace()), file_type="csv"), singer(many(1)))
    assert run.returncode != 0 and "file_type" in run.stderr


def test_bucket_and_prefix_are_still_required_for_files(seaweed):
    config = seaweed.iceberg_config(namespace())
    del config["table_format"]
    run = run_target(config, singer(many(1)))
    assert run.returncode != 0 and 'missing required key "bucket"' in run.stderr, run.stderr
    run = run_target(dict(config, bucket="b"), singer(many(1)))
    assert run.returncode != 0 and 'missing required key "object_key_path"' in run.stderr, run.stderr


def test_a_catalog_over_https_is_reached_and_its_certificate_checked(seaweed, tmp_path):
    """Hosted catalogs speak HTTPS: the REST catalog behind a TLS endpoint, its
    certificate from an authority the system trusts (SSL_CERT_FILE), takes tables, appends
    and a replacement; the same endpoint without that trust is refused, saying why."""
    from fault_proxy import FaultProxy
    from tls import certificates

    authority, certificate, key = certificates(tmp_path)
    proxy = FaultProxy(seaweed.catalog_port, tls=(certificate, key))
    try:
        ns = namespace()
        config = seaweed.iceberg_config(ns, iceberg_catalog_uri=proxy.endpoint)
        trusted = {"SSL_CERT_FILE": authority}
        assert run_target(config, singer(many(5)), env=trusted).returncode == 0
        run = run_target(dict(config, load_method="overwrite"), singer(many(2, start=10)), env=trusted)
        assert run.returncode == 0, run.stderr
        assert [r["id"] for r in rows(seaweed, f"{ns}.public_users")] == [10, 11]
        assert proxy.saw(r"^POST /v1/.*namespaces/.*/tables/public_users")
        refused = run_target(config, singer(many(1)))
        assert refused.returncode != 0
        assert f"Iceberg catalog {proxy.endpoint}" in refused.stderr
        assert "invalid peer certificate: UnknownIssuer" in refused.stderr
    finally:
        proxy.stop()


@pytest.mark.parametrize("answer, files_left", [(409, False), (500, True)])
def test_a_failed_commit_deletes_its_files_only_when_it_surely_failed(seaweed, tmp_path, answer, files_left):
    """A commit the catalog refuses for good (a race lost on every retry: 409) never
    reached the table, so its data files are deleted; after a 500 its outcome is unknown
    (the catalog may have applied it), so they stay, as Iceberg's own writers leave them.
    Either way the run fails naming the table, with no STATE."""
    from fault_proxy import FaultProxy, Rule

    body = json.dumps({"error": {"message": "injected", "type": "CommitFailedException", "code": answer}})
    proxy = FaultProxy(seaweed.catalog_port, rules=[
        Rule(r"^POST /v1/.*/tables/public_users$", "answer", times=None, answer=(answer, body.encode()))])
    try:
        ns = namespace()
        config = seaweed.iceberg_config(ns, iceberg_catalog_uri=proxy.endpoint)
        run = run_target(config, singer(many(5), state_every=2))
        assert run.returncode != 0
        assert f"commit to table {ns}.public_users" in run.stderr
        assert run.states == []
        data = list_keys(seaweed, "warehouse", f"{ns}/public_users/data/")
        assert bool(data) == files_left, data
        assert seaweed.catalog().load_table(f"{ns}.public_users").current_snapshot() is None
    finally:
        proxy.stop()


def test_meltanos_connection_test_stream_leaves_a_readable_table(seaweed):
    """`meltano config test` sends one record of meltano_test_stream. With plain files its
    objects are deleted again; with tables its data file is committed, and deleting it
    would leave a table that no reader can scan, so it stays and the log says so."""
    ns = namespace()
    probe = "\n".join(json.dumps(m) for m in [
        {"type": "SCHEMA", "stream": "meltano_test_stream", "schema": {"properties": {"id": {"type": "integer"}}},
         "key_properties": []},
        {"type": "RECORD", "stream": "meltano_test_stream", "record": {"id": 1}}]) + "\n"
    run = run_target(seaweed.iceberg_config(ns), probe)
    assert run.returncode == 0, run.stderr
    assert "the table stays" in run.stderr and "delete it by hand" not in run.stderr
    table = seaweed.catalog().load_table(f"{ns}.meltano_test_stream")
    assert table.scan().to_arrow().to_pylist() == [{"id": 1}]
