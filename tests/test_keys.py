"""Object keys: the key template (its default is the old layout), and partitioning by
record values into Hive-style folders, read back through the S3 API, pyarrow and DuckDB."""

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from harness import base_config, get_bytes, list_keys, read_csv, read_parquet, run_target

STAMP = r"\d{8}-\d{6}"
RUN_ID = r"[0-9a-f]{16}"
FILE = STAMP + "-" + RUN_ID + r"-\d{5}"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"

ORDER_PROPS = {
    "id": {"type": "integer"},
    "created_at": {"type": "string", "format": "date-time"},
    "country": {"type": ["string", "null"]},
    "amount": {"type": ["integer", "null"]},
}
ODD = "a/b=c d é:✓"  # a slash, an equals sign, a space, a colon and non-ASCII letters
COUNTRIES = ["FR", None, ODD, "", "DE", "FR", ODD, None]
ORDERS = [
    {"id": n, "created_at": f"2024-01-0{1 + n % 2}T{n % 24:02d}:30:00Z", "country": c, "amount": n * 10}
    for n, c in enumerate(COUNTRIES * 3)
]


def singer(stream, props, records, state_every=None, key=("id",)):
    lines = [json.dumps({"type": "SCHEMA", "stream": stream, "key_properties": list(key),
                         "schema": {"properties": props}})]
    for n, r in enumerate(records):
        lines.append(json.dumps({"type": "RECORD", "stream": stream, "record": r}))
        if state_every and (n + 1) % state_every == 0:
            lines.append(json.dumps({"type": "STATE", "value": {"at": n + 1}}))
    return "\n".join(lines) + "\n"


def hive_unescape(text):
    """Hive's and Spark's unescaping of a folder value, restated for the tests."""
    if text == "__HIVE_DEFAULT_PARTITION__":
        return None
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


def folders_of(key):
    return dict(part.split("=", 1) for part in key.split("/") if "=" in part)


def download(server, bucket, prefix, root: Path):
    for key in list_keys(server, bucket, prefix):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(get_bytes(server, bucket, key))
    return root / prefix


def stdout_events(run):
    """STATE values and the keys of stored objects, in the order stdout shows them
    (`--log_to_stdout 1` puts log lines and STATE lines on one stream)."""
    events = []
    for line in run.stdout.splitlines():
        message = json.loads(line)
        if isinstance(message, dict) and message.get("type") == "LOG":
            text = message["message"]
            if text.startswith("METRIC: "):
                metric = json.loads(text[len("METRIC: "):])
                if metric["metric"] == "record_count" and metric["tags"]["status"] == "succeeded":
                    events.append(("stored", metric["tags"]["key"]))
        else:
            events.append(("state", message))
    return events


def test_default_template_is_the_old_layout(server, bucket):
    text = singer("public-users", {"id": {"type": "integer"}}, [{"id": n} for n in range(5)])
    run = run_target(base_config(server, bucket, max_batch_rows=2), text)
    assert run.returncode == 0, run.stderr
    keys = list_keys(server, bucket)
    assert len(keys) == 3
    pattern = re.compile(rf"^exports/run/public-users/({STAMP})-({RUN_ID})-(\d{{5}})\.parquet$")
    matches = [pattern.match(k) for k in keys]
    assert all(matches), keys
    assert len({m.group(2) for m in matches}) == 1, "one run id per run"
    assert sorted(m.group(3) for m in matches) == ["00001", "00002", "00003"]

    spelled_out = "{object_key_path}/{table}/{date_partition}/{partition}/{date:%Y%m%d-%H%M%S}-{run_id}-{part}.{ext}"
    config = base_config(server, bucket, object_key_path="/again//", date_partition_format="year=%Y/",
                         table="Orders:2024", file_type="csv", object_key_template=spelled_out)
    before = dt.datetime.now(dt.timezone.utc)
    run = run_target(config, text)
    assert run.returncode == 0, run.stderr
    [key] = list_keys(server, bucket, "again/")
    assert re.match(rf"^again/Orders%3A2024/year=\d{{4}}/{FILE}\.csv$", key), key
    assert key.split("/")[2] in {f"year={before.year}", f"year={dt.datetime.now(dt.timezone.utc).year}"}


def test_custom_template_fills_every_placeholder(server, bucket):
    template = "{object_key_path}/by-stream/{stream}/{table}/{date:%Y/%m}/{run_id}/{uuid}-{part}.{ext}"
    text = singer("my stream", {"id": {"type": "integer"}}, [{"id": n} for n in range(4)])
    config = base_config(server, bucket, object_key_path="out", table="tbl", file_type="csv",
                         object_key_template=template, max_batch_rows=2)
    run = run_target(config, text)
    assert run.returncode == 0, run.stderr
    keys = list_keys(server, bucket)
    now = dt.datetime.now(dt.timezone.utc)
    pattern = rf"^out/by-stream/my%20stream/tbl/{now:%Y}/{now:%m}/{RUN_ID}/{UUID}-0000[12]\.csv$"
    assert len(keys) == 2 and all(re.match(pattern, k) for k in keys), keys
    rows = sorted(int(r[0]) for k in keys for r in read_csv(server, bucket, k)[1:])
    assert rows == [0, 1, 2, 3]

    # {uuid} alone keeps keys apart too.
    config["object_key_template"] = "{object_key_path}/uuid-only/{uuid}.{ext}"
    config.pop("table")
    run = run_target(config, text)
    assert run.returncode == 0, run.stderr
    keys = list_keys(server, bucket, "out/uuid-only/")
    assert len(keys) == 2 and all(re.match(rf"^out/uuid-only/{UUID}\.csv$", k) for k in keys), keys


@pytest.mark.parametrize("settings, words", [
    ({"object_key_template": "{object_key_path}/{table}/{date:%Y%m%d}.{ext}"},
     ['"object_key_template"', "{run_id} and {part}, or {uuid}", "overwrites"]),
    ({"object_key_template": "{object_key_path}/{table}/{run_id}.{ext}"}, ["{run_id} and {part}, or {uuid}"]),
    ({"object_key_template": "{object_key_path}/{tabel}/{uuid}"}, ["{tabel} is not a placeholder"]),
    ({"object_key_template": "{object_key_path}/{date:%Q}/{uuid}"}, ["{date:%Q}", "strftime"]),
    ({"object_key_template": "{object_key_path}/{uuid"}, ["has no closing"]),
    ({"object_key_template": "{object_key_path}/uuid}"}, ["closes no placeholder"]),
    ({"object_key_template": "{object_key_path}/{uuid}", "partition_by": ["id"]},
     ['"partition_by" is set', "{partition}"]),
    ({"object_key_template": "{table}/{uuid}"}, ['"object_key_path" is set', "{object_key_path}"]),
    ({"partition_by": ["created_at:%Q"]}, ['"partition_by"', "strftime"]),
    ({"partition_by": 5}, ['"partition_by"', "created_at:%Y-%m-%d"]),
])
def test_bad_key_settings_fail_before_any_object(server, bucket, settings, words):
    run = run_target(base_config(server, bucket, **settings), singer("orders", ORDER_PROPS, ORDERS))
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("target-s3: error: config: "), last
    assert all(w in last for w in words), last
    assert list_keys(server, bucket) == []


def test_partitioned_objects_hold_only_their_partition(server, bucket):
    config = base_config(server, bucket, partition_by=["created_at:%Y-%m-%d", "country"])
    run = run_target(config, singer("orders", ORDER_PROPS, ORDERS))
    assert run.returncode == 0, run.stderr
    keys = list_keys(server, bucket)
    folders = set()
    for key in keys:
        # Folders are named after their column with a suffix, never as the column itself.
        m = re.match(rf"^exports/run/orders/created_at_day=(2024-01-0[12])/country_part=([^/]+)/{FILE}\.parquet$",
                     key)
        assert m, key
        folders.add((m.group(1), m.group(2)))
    # Even ids fall on the 1st, odd ids on the 2nd; null and "" share the default partition.
    assert folders == {
        ("2024-01-01", "FR"), ("2024-01-01", "a%2Fb%3Dc d é%3A✓"), ("2024-01-01", "DE"),
        ("2024-01-02", "FR"), ("2024-01-02", "__HIVE_DEFAULT_PARTITION__"),
    }
    assert len(keys) == len(folders), "one object per partition: the records fit one chunk"
    seen = []
    for key in keys:
        table = read_parquet(server, bucket, key)
        assert table.column_names == list(ORDER_PROPS), "rows keep every column"
        folder = folders_of(key)
        for row in table.to_pylist():
            assert row["created_at"].strftime("%Y-%m-%d") == folder["created_at_day"], (key, row)
            assert (row["country"] or None) == hive_unescape(folder["country_part"]), (key, row)
            seen.append(row)
    by_id = sorted(seen, key=lambda r: r["id"])
    assert [r["id"] for r in by_id] == [o["id"] for o in ORDERS]
    assert [r["country"] for r in by_id] == [o["country"] for o in ORDERS], "'' and null both kept in the rows"
    assert [r["amount"] for r in by_id] == [o["amount"] for o in ORDERS]


def test_partition_values_read_back_by_duckdb_and_pyarrow(server, bucket, tmp_path):
    config = base_config(server, bucket, partition_by=["created_day=created_at:%Y-%m-%d", "country"])
    run = run_target(config, singer("orders", ORDER_PROPS, ORDERS))
    assert run.returncode == 0, run.stderr
    root = download(server, bucket, "exports/run/orders/", tmp_path)
    files = str(root) + "/**/*.parquet"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    result = con.sql(f"SELECT id, created_at, created_day, country, country_part FROM read_parquet('{files}', "
                     "hive_partitioning = true) ORDER BY id")
    rows = result.fetchall()
    assert [r[0] for r in rows] == [o["id"] for o in ORDERS]
    for (n, created_at, created_day, country, country_part), order in zip(rows, ORDERS):
        sent = dt.datetime.fromisoformat(order["created_at"])
        assert created_at == sent, "the file's timestamp is kept"
        assert created_day == sent.date(), (n, created_day)
        assert country == order["country"], "the file's value is kept, '' apart from null"
        # The folder's copy: null and "" both read as null.
        assert country_part == (order["country"] or None), (n, country_part)
    described = con.sql(f"DESCRIBE SELECT * FROM read_parquet('{files}', hive_partitioning = true)")
    kinds = {r[0]: r[1] for r in described.fetchall()}
    assert kinds["created_day"] == "DATE" and kinds["created_at"].startswith("TIMESTAMP")
    plain = con.sql(f"SELECT country FROM read_parquet('{files}', hive_partitioning = false) ORDER BY id")
    assert [r[0] for r in plain.fetchall()] == [o["country"] for o in ORDERS]

    partitioning = ds.partitioning(pa.schema([("created_day", pa.date32()), ("country_part", pa.string())]),
                                   flavor="hive")
    table = ds.dataset(str(root), format="parquet", partitioning=partitioning).to_table().sort_by("id")
    assert table.column("id").to_pylist() == [o["id"] for o in ORDERS]
    assert table.column("country").to_pylist() == [o["country"] for o in ORDERS]
    assert table.column("country_part").to_pylist() == [o["country"] or None for o in ORDERS]
    assert table.column("created_day").to_pylist() == [
        dt.date.fromisoformat(o["created_at"][:10]) for o in ORDERS]


def test_integer_and_boolean_partitions_in_csv(server, bucket):
    props = {"id": {"type": "integer"}, "shop": {"type": ["integer", "null"]}, "paid": {"type": "boolean"}}
    records = [{"id": n, "shop": [7, None, -3][n % 3], "paid": n % 2 == 0} for n in range(12)]
    config = base_config(server, bucket, file_type="csv", partition_by=["shop", "paid"])
    run = run_target(config, singer("sales", props, records))
    assert run.returncode == 0, run.stderr
    keys = list_keys(server, bucket)
    got = {}
    for key in keys:
        m = re.match(rf"^exports/run/sales/shop_part=([^/]+)/paid_part=(true|false)/{FILE}\.csv$", key)
        assert m, key
        header, *rows = read_csv(server, bucket, key)
        assert header == ["id", "shop", "paid"]
        for row in rows:
            assert row[1] == ("" if m.group(1) == "__HIVE_DEFAULT_PARTITION__" else m.group(1)), (key, row)
            assert row[2] == m.group(2), (key, row)
            got[int(row[0])] = row
    assert sorted(got) == list(range(12))
    assert {(k.split("/")[3], k.split("/")[4]) for k in keys} == {
        (f"shop_part={s}", f"paid_part={p}") for s in ("7", "__HIVE_DEFAULT_PARTITION__", "-3") for p in ("true", "false")}


def test_partition_by_per_stream_and_schema_errors(server, bucket):
    users = singer("users", {"id": {"type": "integer"}, "name": {"type": "string"}}, [{"id": 1, "name": "x"}])
    orders = singer("orders", ORDER_PROPS, ORDERS[:2])
    config = base_config(server, bucket, partition_by={"orders": ["country"]})
    run = run_target(config, users + orders)
    assert run.returncode == 0, run.stderr
    keys = list_keys(server, bucket)
    assert len(keys) == 3, keys
    assert re.match(rf"^exports/run/users/{FILE}\.parquet$", keys[-1]), "streams not named stay whole"
    assert [k.split("/")[3] for k in keys[:2]] == ["country_part=FR", "country_part=__HIVE_DEFAULT_PARTITION__"]

    # A list applies to every stream: a stream without the field is an error at its SCHEMA.
    run = run_target(base_config(server, bucket, partition_by=["country"]), orders + users)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert 'input line 4, stream "users": partition_by field "country" is not among the schema' in last, last

    nested = {"id": {"type": "integer"}, "meta": {"type": "object", "properties": {"a": {"type": "string"}}}}
    run = run_target(base_config(server, bucket, partition_by=["meta"]), singer("deep", nested, [{"id": 1}]))
    assert run.returncode == 1 and 'stream "deep": partition_by field "meta" holds an object' in run.stderr
    run = run_target(base_config(server, bucket, partition_by=["created_at"]), orders)
    assert run.returncode == 1 and 'give it a strftime pattern, such as "created_at:%Y-%m-%d"' in run.stderr


@pytest.mark.parametrize("entry, words", [
    # Before, this run silently gave DuckDB the folder text in place of the timestamps.
    ("created_at=created_at:%Y-%m",
     ['entry "created_at=created_at:%Y-%m" names its folder "created_at", which is also a column',
      'such as "created_at_month=created_at:%Y-%m"']),
    ("Amount=country", ['names its folder "Amount", which is also a column', 'such as "country_part=country"']),
    # The default name of a derived folder may be a column too.
    ("id:%Y", None),
])
def test_a_folder_named_as_a_column_is_refused_at_its_schema(server, bucket, entry, words):
    props = dict(ORDER_PROPS)
    if words is None:
        props = {**ORDER_PROPS, "id": {"type": "string", "format": "date"}, "id_year": {"type": "integer"}}
        words = ['entry "id:%Y" would name its folder "id_year", which is also a column',
                 'such as "id_year_part=id:%Y"']
    records = [{**o, "id": "2024-01-01", "id_year": 2024} if "id_year" in props else o for o in ORDERS[:3]]
    run = run_target(base_config(server, bucket, partition_by=[entry]), singer("orders", props, records))
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith('target-s3: error: input line 1, stream "orders": partition_by'), last
    assert all(w in last for w in words) and "DuckDB" in last, last
    assert list_keys(server, bucket) == [], "refused before any record"
    assert run.states == []


def test_many_partitions_in_one_batch_stay_within_the_budget(server, bucket):
    props = {"id": {"type": "integer"}, "k": {"type": "string"}}
    records = [{"id": n, "k": f"v{n % 500:03d}"} for n in range(1500)]
    config = base_config(server, bucket, partition_by=["k"])
    run = run_target(config, singer("wide", props, records, state_every=1500), "--log_to_stdout", "1",
                     env={"RUST_LOG": "info,target_s3=debug"})
    assert run.returncode == 0, run.stderr
    keys = list_keys(server, bucket)
    assert len(keys) == 500, "one chunk: one object per partition"
    for key in keys:
        value = re.match(rf"^exports/run/wide/k_part=(v\d{{3}})/{FILE}\.parquet$", key).group(1)
        ids = read_parquet(server, bucket, key).column("id").to_pylist()
        assert ids == [n for n in range(1500) if f"v{n % 500:03d}" == value], key
    # Open objects never exceed max_buffer_bytes / part_size_bytes (64 MiB / 8 MiB).
    open_now = peak = 0
    for line in run.stdout.splitlines():
        log = json.loads(line)
        message = log["message"] if isinstance(log, dict) and log.get("type") == "LOG" else ""
        if ": writing s3://" in message:
            open_now += 1
            peak = max(peak, open_now)
        elif ": completing object " in message:
            open_now -= 1
    assert 1 < peak <= 8, peak
    events = stdout_events(run)
    assert events[-1] == ("state", {"at": 1500})
    assert {key for kind, key in events if kind == "stored"} == set(keys)


def test_state_waits_for_every_partition_object(server, bucket):
    props = {"id": {"type": "integer"}, "k": {"type": "string"}}
    records = [{"id": n, "k": "abcde"[n * 7 % 5]} for n in range(1000)]
    config = base_config(server, bucket, partition_by=["k"], row_group_bytes=1024, max_batch_rows=60,
                         max_concurrent_uploads=1)
    run = run_target(config, singer("s", props, records, state_every=50), "--log_to_stdout", "1",
                     env={"RUST_LOG": "info,target_s3::metrics=debug"})
    assert run.returncode == 0, run.stderr
    keys = list_keys(server, bucket)
    ids_in = {key: read_parquet(server, bucket, key).column("id").to_pylist() for key in keys}
    for key, ids in ids_in.items():
        assert {"abcde"[n * 7 % 5] for n in ids} == {key.split("/")[3].removeprefix("k_part=")}, key
        assert len(ids) <= 60
    assert sorted(n for ids in ids_in.values() for n in ids) == list(range(1000))
    events = stdout_events(run)
    states = [e for kind, e in events if kind == "state"]
    assert states[-1] == {"at": 1000} and len(states) > 3
    stored = set()
    for kind, what in events:
        if kind == "stored":
            stored.add(what)
            continue
        before = {key for key, ids in ids_in.items() if min(ids) < what["at"]}
        assert before <= stored, f"STATE {what} written before {sorted(before - stored)} were stored"


def test_a_failed_partition_holds_back_every_later_state(server, bucket):
    from fault_proxy import FaultProxy, Rule

    proxy = FaultProxy(server.port)
    try:
        # PutObject of any object in the k_part=DE folder fails for good ('=' may be sent as %3D).
        proxy.rules = [Rule(r"^PUT [^?]*/k_part(=|%3D)DE/.*x-id=PutObject", "500", times=None)]
        props = {"id": {"type": "integer"}, "k": {"type": "string"}}
        records = [{"id": n, "k": "DE" if n >= 50 and n % 2 else "FR"} for n in range(100)]
        config = base_config(server, bucket, aws_endpoint=proxy.endpoint, partition_by=["k"],
                             max_batch_rows=10, max_attempts=2)
        run = run_target(config, singer("s", props, records, state_every=10))
    finally:
        proxy.stop()
    assert run.returncode == 1
    assert "k_part=DE/" in run.stderr.strip().splitlines()[-1]
    assert any(r.hits for r in proxy.rules)
    keys = list_keys(server, bucket)
    assert keys and all("/k_part=FR/" in k for k in keys), keys
    stored = sorted(n for k in keys for n in read_parquet(server, bucket, k).column("id").to_pylist())
    assert max(stored) > 51, "FR objects after the first DE record were stored"
    # The first DE record is id 51, after STATE {"at": 50}: no later STATE may be written.
    at = [s["at"] for s in run.states]
    assert at and max(at) <= 50, at
