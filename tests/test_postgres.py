"""A real tap nobody here wrote: MeltanoLabs' tap-postgres (from PyPI) reads a
PostgreSQL table of many column types (a server started here on a free port, its data
in a temporary folder) and pipes it into target-s3; the values read back from the
Parquet object equal the database's."""

import datetime as dt
import json
import subprocess
import uuid
from decimal import Decimal

import pytest

from harness import BINARY, ROOT, PostgresServer, base_config, clean_env, list_keys, read_parquet

TAP = ROOT / ".venv-tap-postgres" / "bin" / "tap-postgres"
UTC = dt.timezone.utc

ROWS = [
    dict(id=1, big=9_007_199_254_740_993, small=-32768, price=Decimal("1234.50"), ratio=0.1, flag=True,
         name="Ada \"Countess\" Lovelace, ✓", code="AB-1", born=dt.date(1815, 12, 10),
         seen=dt.datetime(2024, 2, 29, 23, 59, 59, 123456), seen_tz=dt.datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
         at_time=dt.time(12, 30, 0, 500000), doc={"k": [1, "two", None]}, tags=["a", "b"],
         uid=uuid.UUID("12345678-1234-5678-1234-567812345678")),
    dict(id=2, big=None, small=None, price=None, ratio=None, flag=None, name=None, code=None, born=None,
         seen=None, seen_tz=None, at_time=None, doc=None, tags=None, uid=None),
    dict(id=3, big=-1, small=7, price=Decimal("-0.01"), ratio=-1e300, flag=False, name="", code="",
         born=dt.date(1, 1, 1), seen=dt.datetime(1, 1, 1), seen_tz=dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         at_time=dt.time(0, 0), doc={}, tags=[], uid=uuid.UUID(int=0)),
]
COLUMNS = ("id integer PRIMARY KEY, big bigint, small smallint, price numeric(12,2), ratio double precision, "
           "flag boolean, name text, code varchar(10), born date, seen timestamp, seen_tz timestamptz, "
           "at_time time, doc jsonb, tags text[], uid uuid")


def sql_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float, Decimal)):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, dict):
        return "'" + json.dumps(v).replace("'", "''") + "'"
    if isinstance(v, list):
        return "ARRAY[" + ",".join(sql_literal(x) for x in v) + "]::text[]"
    return "'" + str(v).replace("'", "''") + "'"


@pytest.fixture(scope="module")
def postgres():
    missing = PostgresServer.missing() or (None if TAP.exists() else "needs .venv-tap-postgres")
    if missing:
        pytest.skip(f"POSTGRESQL TEST SKIPPED: {missing} (`make test` installs them)")
    server = PostgresServer()
    values = ",".join("(" + ",".join(sql_literal(r[k]) for k in ROWS[0]) + ")" for r in ROWS)
    setup = (f"CREATE TABLE public.things ({COLUMNS}); INSERT INTO public.things VALUES {values};"
             "CREATE TABLE public.many (id integer PRIMARY KEY, label text, amount numeric(10,3), at timestamptz);"
             "INSERT INTO public.many SELECT i, 'label ' || i, i / 7.0, "
             "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' FROM generate_series(1, 5001) i;")
    server.psql(setup)
    yield server.port
    server.stop()


def canonical(v):
    """One form for both sides: numbers as Decimal, date-times in UTC, the rest as is."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float, Decimal)):
        return Decimal(str(v)).normalize()
    if isinstance(v, dt.datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, dt.time):
        return v.isoformat()  # as Parquet stores times by default (parquet_compatibility)
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return canonical(json.loads(v))
        except ValueError:
            return v
    if isinstance(v, dict):
        return {k: canonical(x) for k, x in v.items()}
    if isinstance(v, list):
        return [canonical(x) for x in v]
    return v


def run_tap(postgres, server, bucket, tmp_path, prefix, streams=None, **tap_settings):
    """tap-postgres (the `streams` named, else every stream, selected as `meltano select`
    would) piped into target-s3 under `prefix`; returns the target's run."""
    tap_config = tmp_path / f"tap-{prefix}.json"
    tap_config.write_text(json.dumps({"host": "127.0.0.1", "port": postgres, "user": "postgres",
                                      "password": "", "database": "postgres", "filter_schemas": ["public"],
                                      **tap_settings}))
    target_config = tmp_path / f"target-{prefix}.json"
    target_config.write_text(json.dumps(base_config(server, bucket, object_key_path=prefix)))
    discovered = subprocess.run([str(TAP), "--config", str(tap_config), "--discover"], capture_output=True,
                                env=clean_env(), check=True)
    catalog = json.loads(discovered.stdout)
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = streams is None or stream["tap_stream_id"] in streams
    catalog_path = tmp_path / f"catalog-{prefix}.json"
    catalog_path.write_text(json.dumps(catalog))
    tap = subprocess.Popen([str(TAP), "--config", str(tap_config), "--catalog", str(catalog_path)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    target = subprocess.run([str(BINARY), "--config", str(target_config)], stdin=tap.stdout, capture_output=True,
                            env=clean_env(), timeout=300)
    tap.stdout.close()
    tap_err = tap.stderr.read().decode()
    assert tap.wait(timeout=60) == 0, tap_err[-3000:]
    assert target.returncode == 0, target.stderr.decode()[-3000:]
    return target


def read_stream(server, bucket, prefix):
    import pyarrow as pa

    tables = [read_parquet(server, bucket, key) for key in list_keys(server, bucket, prefix)]
    assert tables, f"no objects under {prefix}"
    return pa.concat_tables(tables).sort_by("id")


def test_tap_postgres_values_read_back_equal(postgres, server, bucket, tmp_path):
    target = run_tap(postgres, server, bucket, tmp_path, "pg")
    assert target.stdout.strip(), "the tap's STATE is acknowledged"
    [key] = list_keys(server, bucket, "pg/public-things/")
    table = read_parquet(server, bucket, key)
    got = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert len(got) == len(ROWS)
    for sent, read in zip(ROWS, got):
        for column, value in sent.items():
            assert canonical(read[column]) == canonical(value), (column, read[column], value)


# The SDK's own Parquet batcher cannot write the `things` table (pyarrow refuses its
# jsonb list of mixed types before anything reaches the target), so that run reads
# `many` only.
@pytest.mark.parametrize("encoding, streams", [
    ({"format": "jsonl", "compression": "gzip"}, ["public-things", "public-many"]),
    ({"format": "parquet", "compression": "gzip"}, ["public-many"]),
], ids=["jsonl-gzip", "parquet"])
def test_tap_postgres_in_batch_mode_stores_what_record_lines_store(postgres, server, bucket, tmp_path, encoding,
                                                                   streams):
    """The Singer SDK's batch mode: the tap writes its records to files and sends BATCH
    messages naming them. Every row and column must equal the same tap's RECORD run."""
    plain = run_tap(postgres, server, bucket, tmp_path, "records", streams)
    files = tmp_path / "batches"
    batched = run_tap(postgres, server, bucket, tmp_path, "batched", streams, batch_config={
        "encoding": encoding, "storage": {"root": files.as_uri(), "prefix": "b-"}, "batch_size": 2000})
    assert len(list(files.iterdir())) >= 3, "the tap wrote batch files (3 for 5,001 rows)"
    for stream in streams:
        want = read_stream(server, bucket, f"records/{stream}/")
        got = read_stream(server, bucket, f"batched/{stream}/")
        assert got.num_rows == want.num_rows == (3 if stream == "public-things" else 5001)
        assert got.schema == want.schema, stream
        for column in want.column_names:
            assert got.column(column).to_pylist() == want.column(column).to_pylist(), (stream, column)
    assert batched.stdout.strip(), "the tap's STATE is acknowledged once the batches are stored"
    assert json.loads(batched.stdout.splitlines()[-1]).keys() == json.loads(plain.stdout.splitlines()[-1]).keys()
