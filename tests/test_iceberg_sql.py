"""Iceberg tables in a SQL catalog (`iceberg_catalog_type: sql`): a SQLite file in the
layout pyiceberg's SqlCatalog uses (and one PostgreSQL database), data and metadata files
in moto's S3. Read back by pyiceberg's SqlCatalog opened on the same file, and by polars
from the current metadata file the catalog's row names (read with plain sqlite3)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import tempfile
import time
import uuid

import pytest

from harness import (ACCESS_KEY, BINARY, EDGE, EDGE_RECORDS, EDGE_TEXT, SECRET_KEY, PostgresServer, Run, clean_env,
                     compare_rows, free_port, run_target)
from test_iceberg import SCHEMA, many, schema_with, singer

pytest.importorskip("pyiceberg")
pytest.importorskip("sqlalchemy")


def namespace() -> str:
    return f"ns_{uuid.uuid4().hex[:8]}"


def s3_properties(server) -> dict:
    return {"s3.endpoint": server.endpoint, "s3.access-key-id": ACCESS_KEY,
            "s3.secret-access-key": SECRET_KEY, "s3.region": "us-east-1",
            "s3.path-style-access": "true"}


def sql_config(server, bucket, uri: str, ns: str, **extra) -> dict:
    """A target-s3 config that lands streams as tables of the SQL catalog at `uri`."""
    return {"file_type": "parquet", "table_format": "iceberg",
            "iceberg_catalog_type": "sql", "iceberg_catalog_uri": uri,
            "iceberg_warehouse": f"s3://{bucket}/lake", "iceberg_namespace": ns,
            "aws_endpoint": server.endpoint, "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY, "aws_region": "us-east-1", **extra}


@pytest.fixture
def catalog_file(tmp_path):
    return tmp_path / "catalog.db"


def pyiceberg_catalog(server, catalog_file, name: str = "default"):
    """pyiceberg's own SqlCatalog on the same SQLite file."""
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(name, uri=f"sqlite:///{catalog_file}", **s3_properties(server))


def rows(server, catalog_file, table: str) -> list[dict]:
    loaded = pyiceberg_catalog(server, catalog_file).load_table(table)
    return sorted(loaded.scan().to_arrow().to_pylist(), key=lambda r: r["id"])


def in_order(table) -> list:
    """A table's snapshots, oldest first (the metadata file lists them in any order)."""
    return sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)


def catalog_rows(catalog_file) -> list[tuple]:
    """The catalog's table rows, as any SQLite client sees them."""
    with sqlite3.connect(catalog_file) as db:
        return db.execute("SELECT catalog_name, table_namespace, table_name, metadata_location, "
                          "previous_metadata_location FROM iceberg_tables ORDER BY table_name").fetchall()


def test_edge_values_land_in_a_table_pyiceberg_and_polars_read_exactly(server, bucket, catalog_file):
    ns = namespace()
    config = sql_config(server, bucket, f"sqlite:///{catalog_file}", ns, iceberg_commit_interval_seconds=0)
    run = run_target(config, EDGE)
    assert run.returncode == 0, run.stderr
    table = pyiceberg_catalog(server, catalog_file).load_table(f"{ns}.edge")
    assert table.location() == f"s3://{bucket}/lake/{ns}/edge"
    arrow = table.scan().to_arrow().sort_by("id")
    compare_rows(as_json(arrow, JSON_COLUMNS), sorted(EDGE_RECORDS, key=lambda r: r["id"]), EDGE_TEXT)
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types["id"] == "long" and types["ts"] == "timestamptz" and types["d"] == "date"
    assert types["wide"] == "string" and types["dec"].startswith("decimal(")
    assert [types[c] for c in JSON_COLUMNS] == ["string", "string"]
    # The second reader: polars, from the metadata file the catalog's row names, read
    # with its own Parquet reader.
    import polars as pl

    [(name, row_ns, row_table, metadata, _)] = catalog_rows(catalog_file)
    assert (name, row_ns, row_table) == ("default", ns, "edge")
    assert metadata == table.metadata_location
    frame = pl.scan_iceberg(metadata, storage_options=object_store_options(server)).collect().sort("id")
    assert frame.to_arrow().num_rows == arrow.num_rows
    for column in arrow.column_names:
        assert frame[column].to_list() == arrow.column(column).to_pylist(), column


# The edge columns of no single type: JSON text, a `string` column in Iceberg.
JSON_COLUMNS = ("any", "mixed")


def as_json(arrow, columns):
    """`arrow` with `columns` marked as JSON text, so compare_rows compares their values."""
    import pyarrow as pa

    for name in columns:
        i = arrow.schema.get_field_index(name)
        arrow = arrow.set_column(i, pa.field(name, pa.json_()), arrow.column(name).cast(pa.json_()))
    return arrow


def object_store_options(server) -> dict:
    return {"aws_endpoint_url": server.endpoint, "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY, "aws_region": "us-east-1",
            "aws_allow_http": "true", "aws_virtual_hosted_style_request": "false",
            "s3.endpoint": server.endpoint, "s3.access-key-id": ACCESS_KEY,
            "s3.secret-access-key": SECRET_KEY, "s3.region": "us-east-1"}


def test_commits_over_runs_carry_their_state_and_a_new_property_becomes_a_column(server, bucket, catalog_file):
    ns = namespace()
    config = sql_config(server, bucket, f"sqlite:///{catalog_file}", ns,
                        iceberg_commit_interval_seconds=0, max_batch_rows=1000)
    first = run_in_pieces(config, singer(many(2500), state_every=500), lines_per_piece=1002)
    assert first.returncode == 0, first.stderr
    assert first.states[-1] == {"done": 2500}
    table = pyiceberg_catalog(server, catalog_file).load_table(f"{ns}.public_users")
    snapshots = in_order(table)
    assert len(snapshots) >= 2, "several commits in one run"
    for snapshot in snapshots:
        assert json.loads(snapshot.summary["singer.state"])["done"] <= int(snapshot.summary["total-records"])
    assert json.loads(snapshots[-1].summary["singer.state"]) == {"done": 2500}
    run_id = snapshots[-1].summary["singer.run-id"]
    # A second run reopens the table and appends.
    second = run_target(config, singer(many(500, start=2500)))
    assert second.returncode == 0, second.stderr
    # A third adds a column.
    later = [dict(r, email=f"{r['id']}@x") for r in many(5, start=3000)]
    third = run_target(config, singer(later, schema=schema_with(email={"type": ["null", "string"]})))
    assert third.returncode == 0, third.stderr
    got = rows(server, catalog_file, f"{ns}.public_users")
    assert [r["id"] for r in got] == list(range(3005))
    assert [r["email"] for r in got[-6:]] == [None] + [f"{i}@x" for i in range(3000, 3005)]
    assert got[7]["price"] == pytest.approx(1.75) and got[7]["address"] == {"city": "c", "zip": 7}
    table = pyiceberg_catalog(server, catalog_file).load_table(f"{ns}.public_users")
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types["email"] == "string" and types["id"] == "long" and types["updated_at"] == "timestamptz"
    assert not table.schema().find_field("email").required
    summaries = [s.summary for s in in_order(table)]
    assert len({s["singer.run-id"] for s in summaries}) == 3 and summaries[0]["singer.run-id"] == run_id
    assert json.loads(summaries[-1]["singer.state"]) == {"done": 5}
    assert int(summaries[-1]["total-records"]) == 3005
    # The catalog row moved on with every commit, the previous location kept.
    [(_, _, _, metadata, previous)] = catalog_rows(catalog_file)
    assert metadata == table.metadata_location and previous and previous != metadata


def run_in_pieces(config: dict, text: str, lines_per_piece: int, pause: float = 1.0) -> Run:
    """The target fed `text` a piece at a time with a pause after each, long enough for
    the objects stored so far to be committed before more arrive."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as config_file:
        json.dump(config, config_file)
        config_file.flush()
        proc = subprocess.Popen([str(BINARY), "--config", config_file.name], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        lines = text.splitlines(keepends=True)
        for start in range(0, len(lines), lines_per_piece):
            proc.stdin.write("".join(lines[start:start + lines_per_piece]).encode())
            proc.stdin.flush()
            time.sleep(pause)
        out, err = proc.communicate(timeout=120)
    return Run(proc.returncode, out.decode(), err.decode())


def test_tables_made_by_pyiceberg_are_appended_to_and_the_catalog_name_keys_the_rows(server, bucket, catalog_file):
    import pyarrow as pa

    ns = namespace()
    theirs = pyiceberg_catalog(server, catalog_file, "lake")
    theirs.create_namespace(ns)
    made = theirs.create_table(f"{ns}.public_users", schema=pa.schema([("id", pa.int64()), ("name", pa.string())]),
                               location=f"s3://{bucket}/elsewhere/users")
    made.append(pa.table({"id": pa.array([-1], pa.int64()), "name": ["from pyiceberg"]}))
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}}}
    config = sql_config(server, bucket, f"sqlite:///{catalog_file}", ns,
                        iceberg_catalog_properties={"name": "lake"})
    run = run_target(config, singer([{"id": 1, "name": "from target-s3"}], schema=schema))
    assert run.returncode == 0, run.stderr
    table = pyiceberg_catalog(server, catalog_file, "lake").load_table(f"{ns}.public_users")
    got = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert got == [{"id": -1, "name": "from pyiceberg"}, {"id": 1, "name": "from target-s3"}]
    assert table.location() == f"s3://{bucket}/elsewhere/users"
    assert [s.summary.get("singer.run-id") is not None for s in in_order(table)] == [False, True]
    # The rows are keyed by the catalog's name: the default catalog has no such table.
    assert not pyiceberg_catalog(server, catalog_file).table_exists(f"{ns}.public_users")
    assert {row[0] for row in catalog_rows(catalog_file)} == {"lake"}


def test_two_writers_on_one_sqlite_catalog_both_commit(server, bucket, catalog_file, tmp_path):
    ns = namespace()
    config = sql_config(server, bucket, f"sqlite:///{catalog_file}", ns,
                        iceberg_commit_interval_seconds=0, max_batch_rows=100)
    assert run_target(config, singer(many(1))).returncode == 0
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    procs = [subprocess.Popen([str(BINARY), "--config", str(config_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
             for _ in range(2)]
    outs = [proc.communicate(singer(many(1000, start=start), state_every=100).encode(), timeout=180)
            for proc, start in zip(procs, (1000, 5000))]
    for proc, (_, err) in zip(procs, outs):
        assert proc.returncode == 0, err.decode()
    ids = [r["id"] for r in rows(server, catalog_file, f"{ns}.public_users")]
    assert ids == [0] + list(range(1000, 2000)) + list(range(5000, 6000))


def test_a_catalog_that_cannot_be_opened_ends_the_run_with_one_line(server, bucket, tmp_path):
    uri = f"sqlite:///{tmp_path}/no/such/folder/catalog.db"
    run = run_target(sql_config(server, bucket, uri, namespace()), singer(many(1)))
    assert run.returncode != 0 and run.states == []
    [line] = [l for l in run.stderr.splitlines() if uri in l]
    assert "Iceberg catalog" in line and "unable to open database file" in line, run.stderr


def test_a_postgres_password_never_shows(server, bucket):
    # A closed port: the connection is refused at once.
    uri = f"postgresql://loader:Sup3r-s3cret%21@127.0.0.1:{free_port()}/lake"
    run = run_target(sql_config(server, bucket, uri, namespace()), singer(many(1)))
    assert run.returncode != 0 and run.states == []
    assert "Sup3r-s3cret" not in run.stderr and "%21" not in run.stderr, run.stderr
    assert "Iceberg catalog postgresql://loader@127.0.0.1" in run.stderr, run.stderr
    # Given as iceberg_credential instead, it does not show either.
    run = run_target(sql_config(server, bucket, uri.replace(":Sup3r-s3cret%21", ""), namespace(),
                                iceberg_credential="Sup3r-s3cret!"), singer(many(1)))
    assert run.returncode != 0 and "Sup3r-s3cret" not in run.stderr, run.stderr


def test_sql_settings_are_checked_at_start(server, bucket, catalog_file):
    uri = f"sqlite:///{catalog_file}"
    config = sql_config(server, bucket, uri, namespace())
    del config["iceberg_warehouse"]
    run = run_target(config, singer(many(1)))
    assert run.returncode != 0 and 'missing key "iceberg_warehouse"' in run.stderr, run.stderr
    run = run_target(sql_config(server, bucket, uri, namespace(), iceberg_warehouse="lake"), singer(many(1)))
    assert run.returncode != 0 and "s3://" in run.stderr, run.stderr
    run = run_target(sql_config(server, bucket, "mysql://u:hunter2@h/db", namespace()), singer(many(1)))
    assert run.returncode != 0 and "iceberg_catalog_uri" in run.stderr and "hunter2" not in run.stderr
    assert not catalog_file.exists(), "nothing is made before the settings are checked"


@pytest.fixture(scope="module")
def postgres():
    missing = PostgresServer.missing()
    if missing:
        pytest.skip(f"POSTGRESQL TEST SKIPPED: {missing}")
    # Passwords are checked over TCP, so a wrong one is refused.
    server = PostgresServer(host_auth="scram-sha-256")
    yield server
    server.stop()


def test_a_postgres_catalog_keeps_the_tables(postgres, server, bucket):
    ns = namespace()
    password = "pg p@ss/word"
    postgres.psql(f"CREATE ROLE loader LOGIN PASSWORD '{password}'")
    postgres.psql("CREATE DATABASE lake OWNER loader")
    uri = f"postgresql://loader@127.0.0.1:{postgres.port}/lake"
    config = sql_config(server, bucket, uri, ns, iceberg_credential=password)
    assert run_target(config, singer(many(10))).returncode == 0
    run = run_target(config, singer(many(5, start=10)))
    assert run.returncode == 0, run.stderr
    assert password not in run.stderr
    # The catalog's rows, as psql sees them; the table read through its metadata file.
    out = postgres.psql("SELECT catalog_name, table_namespace, table_name, metadata_location "
                        "FROM iceberg_tables", database="lake")
    [(name, row_ns, table_name, metadata)] = [line.split("|") for line in out.splitlines()]
    assert (name, row_ns, table_name) == ("default", ns, "public_users")
    from pyiceberg.table import StaticTable

    table = StaticTable.from_metadata(metadata, properties=s3_properties(server))
    got = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in got] == list(range(15)) and got[3]["name"] == "user 3"
    assert len(table.metadata.snapshots) == 2
    # A wrong password: one line, naming the catalog, never the password.
    run = run_target(dict(config, iceberg_credential="not-the-password"), singer(many(1)))
    assert run.returncode != 0 and "not-the-password" not in run.stderr
    assert "password authentication failed" in run.stderr and uri in run.stderr, run.stderr
