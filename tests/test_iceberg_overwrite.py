"""`load_method: overwrite` with Iceberg tables, in each of the four catalogs (SeaweedFS's
REST catalog; moto's Glue and S3 Tables; a SQLite file in pyiceberg's SqlCatalog
layout): a run replaces a table's rows in one `overwrite` snapshot at its end, so
readers see the old rows or the new ones, never both, never none. Read back by
pyiceberg and by polars' own Parquet reader; the snapshot's manifests are checked with
pyiceberg's reader (the old files marked deleted)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import pytest

from harness import BINARY, clean_env, run_target
from test_iceberg import EDGE, SCHEMA, assert_edge_rows, many, singer, two_writers
from test_iceberg_glue import catalog as glue_catalog
from test_iceberg_glue import glue_config, polars_rows
from test_iceberg_s3tables import config_for as s3tables_config
from test_iceberg_s3tables import load as s3tables_load
from test_iceberg_s3tables import s3tables
from test_iceberg_sql import pyiceberg_catalog, sql_config

pytest.importorskip("pyiceberg")


@dataclass
class Catalog:
    """One catalog kind: a target-s3 config for it, and its current table as pyiceberg
    reads it."""
    name: str
    config: Callable[..., dict]
    load: Callable[[str], object]
    polars: Callable[[object], list[dict]]


@pytest.fixture(params=["rest", "glue", "s3tables", "sql"])
def catalog(request, tmp_path) -> Catalog:
    kind = request.param
    if kind == "rest":
        seaweed = request.getfixturevalue("seaweed")
        ns = f"ns_{uuid.uuid4().hex[:8]}"

        def polars(table):
            import polars as pl
            frame = pl.scan_iceberg(table, storage_options=seaweed.object_store_options())
            return frame.collect().sort("id").to_dicts()

        return Catalog(kind, lambda **extra: seaweed.iceberg_config(ns, **extra),
                       lambda table: seaweed.catalog().load_table(f"{ns}.{table}"), polars)
    server = request.getfixturevalue("server")
    bucket = request.getfixturevalue("bucket")
    read = lambda table: polars_rows(server, table)  # noqa: E731
    if kind == "glue":
        db = f"lake_{uuid.uuid4().hex[:8]}"
        return Catalog(kind, lambda **extra: glue_config(server, bucket, db, **extra),
                       lambda table: glue_catalog(server).load_table(f"{db}.{table}"), read)
    if kind == "s3tables":
        arn = s3tables(server).create_table_bucket(name=f"lake-{uuid.uuid4().hex[:8]}")["arn"]
        return Catalog(kind, lambda **extra: s3tables_config(server, arn, **extra),
                       lambda table: s3tables_load(server, arn, table)[0], read)
    catalog_file = tmp_path / "catalog.db"
    ns = f"ns_{uuid.uuid4().hex[:8]}"
    return Catalog(kind,
                   lambda **extra: sql_config(server, bucket, f"sqlite:///{catalog_file}", ns, **extra),
                   lambda table: pyiceberg_catalog(server, catalog_file).load_table(f"{ns}.{table}"), read)


def ids(table, snapshot_id: int | None = None) -> list[int]:
    scan = table.scan(snapshot_id=snapshot_id)
    return sorted(r["id"] for r in scan.to_arrow().to_pylist())


def live_and_deleted(table) -> tuple[set[str], set[str]]:
    """The current snapshot's live data files, and those its manifests mark deleted."""
    from pyiceberg.manifest import ManifestEntryStatus

    live, deleted = set(), set()
    for manifest in table.current_snapshot().manifests(table.io):
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
            target = deleted if entry.status == ManifestEntryStatus.DELETED else live
            target.add(entry.data_file.file_path)
    return live, deleted


def files_of(table) -> set[str]:
    return {task.file.file_path for task in table.scan().plan_files()}


def test_overwrite_replaces_the_rows_in_one_snapshot(catalog):
    for start in (0, 3):
        run = run_target(catalog.config(max_batch_rows=2), singer(many(3, start=start)))
        assert run.returncode == 0, run.stderr
    before = catalog.load("public_users")
    assert ids(before) == list(range(6)) and len(before.metadata.snapshots) >= 2
    old_files, old_snapshot = files_of(before), before.current_snapshot().snapshot_id

    # A replacing run over several flushes: its files commit once, at its end.
    run = run_target(catalog.config(load_method="overwrite", iceberg_commit_interval_seconds=0,
                                    max_batch_rows=2),
                     singer(EDGE, state_every=1))
    assert run.returncode == 0, run.stderr
    # STATE is held to the end: one line, the last.
    assert run.states == [{"done": 3}]
    table = catalog.load("public_users")
    got = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert_edge_rows(*got, table)
    assert [r["id"] for r in catalog.polars(table)] == [r["id"] for r in got]

    snapshot = table.current_snapshot()
    summary = snapshot.summary
    assert summary.operation.value == "overwrite"
    assert snapshot.parent_snapshot_id == old_snapshot
    assert json.loads(summary["singer.state"]) == {"done": 3}
    assert summary["total-records"] == "3" and summary["deleted-records"] == "6"
    assert summary["added-records"] == "3" and summary["total-data-files"] == summary["added-data-files"]
    live, deleted = live_and_deleted(table)
    assert deleted == old_files and not live & old_files
    # One snapshot for the whole replacement; the old rows are still there to travel to.
    assert len(table.metadata.snapshots) == len(before.metadata.snapshots) + 1
    assert ids(table, snapshot_id=old_snapshot) == list(range(6))


def test_a_stream_sent_whole_and_empty_empties_its_table(catalog):
    run = run_target(catalog.config(iceberg_commit_interval_seconds=0), singer(many(3)))
    assert run.returncode == 0, run.stderr
    empty = "\n".join([
        json.dumps({"type": "SCHEMA", "stream": "public-users", "schema": SCHEMA, "key_properties": ["id"]}),
        json.dumps({"type": "ACTIVATE_VERSION", "stream": "public-users", "version": 2}),
        json.dumps({"type": "STATE", "value": {"emptied": True}})]) + "\n"
    run = run_target(catalog.config(load_method="overwrite"), empty)
    assert run.returncode == 0, run.stderr
    assert run.states == [{"emptied": True}]
    table = catalog.load("public_users")
    assert ids(table) == []
    assert table.current_snapshot().summary["total-records"] == "0"
    # A stream that only had its SCHEMA sent keeps its rows (nothing new to replace them).
    schema_only = "\n".join(empty.splitlines()[::2]) + "\n"
    run = run_target(catalog.config(load_method="overwrite"), schema_only)
    assert run.returncode == 0, run.stderr
    assert len(catalog.load("public_users").metadata.snapshots) == len(table.metadata.snapshots)


def test_readers_see_the_old_rows_until_the_replacement_commits(seaweed, tmp_path):
    """While a replacing run is under way (its files stored, flushes committed in append
    mode would be visible), the table holds exactly the old rows; after it, exactly the
    new ones."""
    ns = f"ns_{uuid.uuid4().hex[:8]}"
    run = run_target(seaweed.iceberg_config(ns, iceberg_commit_interval_seconds=0), singer(many(4)))
    assert run.returncode == 0, run.stderr
    config = seaweed.iceberg_config(ns, load_method="overwrite", iceberg_commit_interval_seconds=0,
                                    max_batch_rows=10)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    lines = singer(many(50, start=100), state_every=10).splitlines(keepends=True)
    proc = subprocess.Popen([str(BINARY), "--config", str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    proc.stdin.write("".join(lines[:40]).encode())
    proc.stdin.flush()
    time.sleep(3)
    table = seaweed.catalog().load_table(f"{ns}.public_users")
    assert ids(table) == list(range(4))
    proc.stdin.write("".join(lines[40:]).encode())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines() == ['{"done":50}']
    table = seaweed.catalog().load_table(f"{ns}.public_users")
    assert ids(table) == list(range(100, 150))


def test_overwrite_with_manifest_or_partition_by_is_refused(seaweed):
    for extra in ({"manifest": True}, {"partition_by": ["id"]}):
        run = run_target(seaweed.iceberg_config("ns", load_method="overwrite", **extra), singer(many(1)))
        assert run.returncode != 0
        assert "does not combine with manifest or partition_by" in run.stderr


@pytest.mark.parametrize("catalog", ["rest", "sql"], indirect=True)
def test_two_replacing_writers_at_once_leave_one_runs_rows(catalog, tmp_path):
    """Two overwrite runs on one table at once: both exit 0 (the one whose commit is
    refused builds its snapshot again on the other's), and the table holds exactly one
    run's rows, never both, never a mix."""
    assert run_target(catalog.config(), singer(many(1))).returncode == 0
    outcomes = two_writers(catalog.config(load_method="overwrite", max_batch_rows=200), tmp_path)
    got = ids(catalog.load("public_users"))
    assert got in (list(range(1000, 2000)), list(range(5000, 6000)))
    for _, out, _ in outcomes:
        assert out.decode().splitlines() == ['{"done":1000}']
