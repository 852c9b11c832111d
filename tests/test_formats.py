"""Formats beyond the peers: JSONL, compression (whole-object gzip/zstd for CSV and
JSONL, codecs inside Parquet), Content-Type and Content-Encoding, the CSV dialect, and
flattening of nested objects. Every object is read back through the S3 API with
independent readers: Python's gzip, json and csv modules, zstandard, pyarrow, DuckDB."""

import base64
import csv
import datetime as dt
import gzip
import io
import json
import random
from decimal import Decimal

import duckdb
import pyarrow.parquet as pq
import pytest
import zstandard

from harness import (
    EDGE,
    EDGE_RECORDS,
    SAMPLE,
    base_config,
    expected_value,
    get_bytes,
    list_keys,
    load,
    only_key,
    parse_json,
    read_parquet,
    run_target,
    singer_records,
)

MiB = 1024 * 1024


def head(server, bucket, key):
    return server.client().head_object(Bucket=bucket, Key=key)


def unzstd(data: bytes) -> bytes:
    # A streamed frame does not record its size up front, so read it as a stream.
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


def stream_text(properties, records, stream="s", key=None):
    lines = [json.dumps({"type": "SCHEMA", "stream": stream, "key_properties": key or [],
                         "schema": {"properties": properties}})]
    lines += [json.dumps({"type": "RECORD", "stream": stream, "record": r}) for r in records]
    lines.append(json.dumps({"type": "STATE", "value": {"done": True}}))
    return "\n".join(lines) + "\n"


def csv_rows(text: str, **dialect) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), **dialect))


# ---- JSONL ----

def from_json(value, arrow_type):
    """A JSONL value as the reader-side Python value for `arrow_type`, parsed
    independently (ISO strings, exact numbers), to compare with expected_value."""
    import pyarrow as pa

    if value is None:
        return None
    if isinstance(arrow_type, pa.BaseExtensionType):
        return value
    if pa.types.is_struct(arrow_type):
        assert list(value) == [f.name for f in arrow_type], value
        return {f.name: from_json(value[f.name], f.type) for f in arrow_type}
    if pa.types.is_list(arrow_type):
        return [from_json(v, arrow_type.value_type) for v in value]
    if pa.types.is_timestamp(arrow_type):
        assert value.endswith("Z"), value
        return dt.datetime.fromisoformat(value)
    if pa.types.is_date(arrow_type):
        return dt.date.fromisoformat(value)
    if pa.types.is_time(arrow_type):
        return dt.time.fromisoformat(value)
    if pa.types.is_decimal(arrow_type):
        return Decimal(value)
    if pa.types.is_floating(arrow_type):
        return float(value)
    return value


def test_jsonl_values_typed_by_the_schema_read_by_python_json(server, bucket):
    # The Arrow types say how JSONL values are typed (JSONL keeps them whatever
    # parquet_compatibility says).
    load(server, bucket, EDGE, prefix="pq", parquet_compatibility="arrow")
    schema = read_parquet(server, bucket, only_key(server, bucket, "pq/edge/")).schema
    load(server, bucket, EDGE, file_type="jsonl")
    key = only_key(server, bucket, "out/edge/")
    assert key.endswith(".jsonl")
    text = get_bytes(server, bucket, key).decode()
    assert text.endswith("\n") and "\r" not in text.replace("\\r", "")
    rows = [parse_json(line) for line in text.splitlines()]
    assert len(rows) == len(EDGE_RECORDS)
    for n, (row, record) in enumerate(zip(rows, EDGE_RECORDS)):
        assert list(row) == schema.names, "every column, in schema order"
        for field in schema:
            got = from_json(row[field.name], field.type)
            want = expected_value(record.get(field.name), field.type)
            assert got == want, f"row {n}, column {field.name}: read {got!r}, sent {want!r}"
    # Exact digits: integers beyond 2^53 and decimals as JSON numbers, never floats.
    first, third = text.splitlines()[0], text.splitlines()[2]
    assert '"big":9007199254740993,' in first
    assert '"dec":1234567890123456789012345678.0123456789,' in first
    assert '"wide":999999999999999999999999999999999999999999999999999999999999.99,' in first
    assert '"big":1000000000000000000000000000001,' in third
    assert rows[0]["big"] == 9007199254740993 and isinstance(rows[0]["big"], int)
    assert rows[0]["dec"] == Decimal("1234567890123456789012345678.0123456789")
    # Timestamps as RFC 3339 strings in UTC, as the CSV encoder renders them.
    assert [r["ts"] for r in rows[:3]] == [
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2024-02-29T06:30:00.500Z"]
    csv_text = None
    load(server, bucket, EDGE, prefix="csv", file_type="csv")
    csv_text = get_bytes(server, bucket, only_key(server, bucket, "csv/edge/")).decode()
    csv_ts = [r[8] for r in csv_rows(csv_text)[1:]]
    assert csv_ts == [r["ts"] or "" for r in rows]
    # Floats stay floats; nested objects and arrays are JSON; nulls are null.
    assert str(rows[0]["f"]) == "-0.0" and rows[5]["f"] is None and rows[5]["obj"] is None
    assert '"l":[1.5,null,-2.0]' in first, "a whole float stays a float in JSON"
    assert rows[0]["obj"]["b"] == {"c": "x", "ts": "2024-01-01T00:00:00Z"}
    assert rows[0]["any"] == {"k": [1, "two", None], "n": {"m": Decimal("1.0e5")}}


def test_jsonl_read_by_duckdb(server, bucket, tmp_path):
    load(server, bucket, EDGE, file_type="jsonl", compression="zstd")
    key = only_key(server, bucket, "out/edge/")
    assert key.endswith(".jsonl.zst")
    path = tmp_path / "edge.jsonl.zst"
    path.write_bytes(get_bytes(server, bucket, key))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = "{'id': 'BIGINT', 'i': 'BIGINT', 'big': 'DECIMAL(38,0)', 'dec': 'DECIMAL(38,10)', " \
              "'s': 'VARCHAR', 'ts': 'TIMESTAMPTZ', 'd': 'DATE', 't': 'TIME'}"
    result = con.sql(f"SELECT * FROM read_json('{path}', format = 'newline_delimited', "
                     f"compression = 'zstd', columns = {columns}) ORDER BY id").fetchall()
    names = ["id", "i", "big", "dec", "s", "ts", "d", "t"]
    import pyarrow as pa
    types = {"id": pa.int64(), "i": pa.int64(), "big": pa.decimal128(38, 0), "dec": pa.decimal128(38, 10),
             "s": pa.string(), "ts": pa.timestamp("us", "UTC"), "d": pa.date32(), "t": pa.time64("us")}
    assert len(result) == len(EDGE_RECORDS)
    for n, (row, record) in enumerate(zip(result, EDGE_RECORDS)):
        for name, got in zip(names, row):
            want = expected_value(record.get(name), types[name])
            assert got == want, f"row {n}, column {name}: DuckDB read {got!r}, sent {want!r}"
    # And with DuckDB's own type detection, the nested columns come back as structs.
    detected = con.sql(f"SELECT obj.b.c AS c, arr FROM read_json('{path}', compression = 'zstd') "
                       "ORDER BY id").fetchall()
    assert detected[0] == ("x", []) and detected[1] == (None, ["a", None, ""])


# ---- compression ----

def random_records(count: int, seed: int = 11) -> list[dict]:
    """Records of random text, which compresses only to about three quarters."""
    rng = random.Random(seed)
    return [{"id": i, "blob": base64.b64encode(rng.randbytes(300)).decode(), "n": rng.random()}
            for i in range(count)]


def wordy_records(count: int, seed: int = 5) -> list[dict]:
    """Records of text from a small vocabulary, which compresses well: enough for the
    levels of a codec to make a difference."""
    rng = random.Random(seed)
    words = ["order", "shipped", "customer", "invoice", "paid", "refund", "London", "Paris",
             "gift", "wrap", "express", "standard", "note", "blue", "red", "large"]
    return [{"id": i, "blob": " ".join(rng.choice(words) for _ in range(40)), "n": rng.randint(0, 999) / 4}
            for i in range(count)]


BLOB_PROPERTIES = {"id": {"type": "integer"}, "blob": {"type": "string"}, "n": {"type": "number"}}


def test_gzip_csv_across_multipart_parts_is_one_gzip_stream(server, bucket):
    records = random_records(40_000)
    text = stream_text(BLOB_PROPERTIES, records, key=["id"])
    run = load(server, bucket, text, file_type="csv", compression="gzip",
               part_size_bytes=5 * MiB, row_group_bytes=256 * 1024)
    assert run.states == [{"done": True}]
    key = only_key(server, bucket, "out/s/")
    assert key.endswith(".csv.gz")
    meta = head(server, bucket, key)
    assert meta["ContentType"] == "text/csv" and meta["ContentEncoding"] == "gzip"
    parts = int(meta["ETag"].strip('"').rsplit("-", 1)[1])
    body = get_bytes(server, bucket, key)
    assert parts >= 2 and len(body) > 5 * MiB, (parts, len(body))
    # One gzip member across every part: the stream decodes whole, ending exactly at
    # the member's end, and the trailer's CRC and size match (checked by gzip).
    decoder = __import__("zlib").decompressobj(wbits=31)
    plain = decoder.decompress(body) + decoder.flush()
    assert decoder.eof and decoder.unused_data == b""
    assert plain == gzip.decompress(body)
    rows = csv_rows(plain.decode())
    assert rows[0] == ["id", "blob", "n"]
    assert [int(r[0]) for r in rows[1:]] == list(range(40_000))
    assert [r[1] for r in rows[1:]] == [r["blob"] for r in records]
    assert [float(r[2]) for r in rows[1:]] == [r["n"] for r in records]


def test_gzip_levels_reach_the_stream(server, bucket):
    text = stream_text(BLOB_PROPERTIES, wordy_records(2000))
    sizes = {}
    for level in (1, 9):
        prefix = f"level{level}"
        load(server, bucket, text, prefix=prefix, file_type="csv", compression="gzip",
             compression_level=level)
        body = get_bytes(server, bucket, only_key(server, bucket, f"{prefix}/s/"))
        # The gzip header's XFL byte says 4 for the fastest level and 2 for the best.
        assert body[8] == {1: 4, 9: 2}[level], body[:10]
        sizes[level] = len(body)
        assert csv_rows(gzip.decompress(body).decode())[1][0] == "0"
    assert sizes[9] < sizes[1]


def test_zstd_csv_and_jsonl_with_levels(server, bucket):
    text = stream_text(BLOB_PROPERTIES, wordy_records(3000))
    sizes = {}
    for file_type in ("csv", "jsonl"):
        for level in (1, 19):
            prefix = f"{file_type}{level}"
            load(server, bucket, text, prefix=prefix, file_type=file_type, compression="zstd",
                 compression_level=level)
            key = only_key(server, bucket, f"{prefix}/s/")
            assert key.endswith(f".{file_type}.zst")
            meta = head(server, bucket, key)
            inner = {"csv": "text/csv", "jsonl": "application/x-ndjson"}[file_type]
            assert (meta["ContentType"], meta["ContentEncoding"]) == (inner, "zstd")
            body = get_bytes(server, bucket, key)
            assert body[:4] == b"\x28\xb5\x2f\xfd", "a zstd frame"
            sizes[prefix] = len(body)
            plain = unzstd(body).decode()
            if file_type == "csv":
                ids = [int(r[0]) for r in csv_rows(plain)[1:]]
            else:
                ids = [json.loads(line)["id"] for line in plain.splitlines()]
            assert ids == list(range(3000))
    assert sizes["csv19"] < sizes["csv1"] and sizes["jsonl19"] < sizes["jsonl1"]


PARQUET_CODECS = [("snappy", "SNAPPY"), ("zstd", "ZSTD"), ("gzip", "GZIP"), ("lz4", "LZ4"),
                  ("none", "UNCOMPRESSED")]


@pytest.mark.parametrize("codec,name", PARQUET_CODECS)
def test_parquet_codecs_read_by_pyarrow_and_duckdb(server, bucket, tmp_path, codec, name):
    settings = {"compression": codec}
    if codec in ("zstd", "gzip"):
        settings["compression_level"] = 9
    load(server, bucket, EDGE, **settings)
    key = only_key(server, bucket, "out/edge/")
    assert key.endswith(".parquet")
    meta = head(server, bucket, key)
    assert meta["ContentType"] == "application/vnd.apache.parquet"
    assert "ContentEncoding" not in meta, "Parquet's own compression is no Content-Encoding"
    body = get_bytes(server, bucket, key)
    metadata = pq.ParquetFile(io.BytesIO(body)).metadata
    row_group = metadata.row_group(0)
    assert {row_group.column(i).compression for i in range(row_group.num_columns)} == {name}
    table = pq.read_table(io.BytesIO(body))
    assert table.column("big").to_pylist() == [expected_value(r.get("big"), table.schema.field("big").type)
                                               for r in EDGE_RECORDS]
    path = tmp_path / "edge.parquet"
    path.write_bytes(body)
    got = duckdb.connect().sql(f"SELECT id, s, dec FROM read_parquet('{path}') ORDER BY id").fetchall()
    assert got == [(r["id"], r.get("s"), None if r.get("dec") is None else Decimal(str(r["dec"])))
                   for r in EDGE_RECORDS]


def test_parquet_default_is_snappy_and_text_formats_default_to_none(server, bucket):
    load(server, bucket, SAMPLE, prefix="pq")
    key = list_keys(server, bucket, "pq/users/")[0]
    metadata = pq.ParquetFile(io.BytesIO(get_bytes(server, bucket, key))).metadata
    assert metadata.row_group(0).column(0).compression == "SNAPPY"
    for file_type, content_type in (("csv", "text/csv"), ("jsonl", "application/x-ndjson")):
        load(server, bucket, SAMPLE, prefix=file_type, file_type=file_type)
        key = list_keys(server, bucket, f"{file_type}/users/")[0]
        assert key.endswith(f".{file_type}")
        meta = head(server, bucket, key)
        assert meta["ContentType"] == content_type and "ContentEncoding" not in meta
        body = get_bytes(server, bucket, key)
        assert body.startswith(b"id," if file_type == "csv" else b'{"id":1,')


@pytest.mark.parametrize("settings,expected", [
    ({"file_type": "csv", "compression": "snappy"}, '"none", "gzip", "zstd" for file_type "csv"'),
    ({"file_type": "parquet", "compression": "brotli"}, '"compression" has value "brotli"'),
    ({"compression": "zstd", "compression_level": 23}, "from 1 to 22"),
    ({"file_type": "jsonl", "compression": "gzip", "compression_level": 10}, "from 0 to 9"),
    ({"compression": "snappy", "compression_level": 3}, '"snappy" takes no level'),
    ({"file_type": "csv", "compression_level": 3}, '"none" takes no level'),
])
def test_compression_config_errors_are_one_clear_line(server, bucket, settings, expected):
    run = run_target(base_config(server, bucket, **settings), SAMPLE)
    assert run.returncode == 1
    assert expected in run.stderr and run.stderr.count("error") == 1, run.stderr
    assert list_keys(server, bucket) == [], "refused before any input is read"


def test_rejected_records_are_jsonl_objects(server, bucket):
    text = stream_text({"id": {"type": "integer"}}, [{"id": 1}, {"id": "two"}], key=["id"])
    load(server, bucket, text, file_type="csv", compression="gzip", invalid_records="quarantine")
    key = only_key(server, bucket, "out/s/_rejected/")
    assert key.endswith(".jsonl")
    meta = head(server, bucket, key)
    assert meta["ContentType"] == "application/x-ndjson" and "ContentEncoding" not in meta
    [rejected] = [json.loads(line) for line in get_bytes(server, bucket, key).decode().splitlines()]
    assert rejected["message"]["record"] == {"id": "two"}
    data = [k for k in list_keys(server, bucket, "out/s/") if "_rejected" not in k]
    assert len(data) == 1 and data[0].endswith(".csv.gz")
    assert gzip.decompress(get_bytes(server, bucket, data[0])) == b"id\r\n1\r\n"


# ---- CSV dialect ----

DIALECT_PROPERTIES = {"id": {"type": "integer"}, "s": {"type": ["null", "string"]},
                      "x": {"type": ["null", "number"]}, "at": {"type": ["null", "string"], "format": "date-time"}}
DIALECT_RECORDS = [
    {"id": 1, "s": "plain", "x": 1.5, "at": "2024-01-02T03:04:05Z"},
    {"id": 2, "s": None, "x": None, "at": None},
    {"id": 3, "s": "", "x": 0},
    {"id": 4, "s": "\\N", "x": -2},
    {"id": 5, "s": "tab\there, it's | \"so\"\nnext line"},
]


def test_csv_dialect_tab_quote_no_header_and_null_text(server, bucket, tmp_path):
    text = stream_text(DIALECT_PROPERTIES, DIALECT_RECORDS)
    load(server, bucket, text, file_type="csv", csv_delimiter="tab", csv_quote_character="'",
         csv_header=False, csv_null_text="\\N")
    raw = get_bytes(server, bucket, only_key(server, bucket, "out/s/")).decode()
    lines = raw.split("\r\n")
    assert lines[0] == "1\tplain\t1.5\t2024-01-02T03:04:05Z", "no header row"
    assert lines[1] == "2\t\\N\t\\N\t\\N", "nulls are the null text"
    assert lines[2] == "3\t\t0\t\\N", "an empty string is an empty field"
    assert lines[3] == "4\t'\\N'\t-2\t\\N", "a string equal to the null text is quoted"
    assert lines[4].startswith("5\t'tab\there, it''s | \"so\"\nnext")
    rows = csv_rows(raw, delimiter="\t", quotechar="'")
    assert [r[1] for r in rows] == ["plain", "\\N", "", "\\N", DIALECT_RECORDS[4]["s"]]
    # DuckDB, told the dialect, tells the null from the string "\N" and from "".
    path = tmp_path / "dialect.csv"
    path.write_text(raw, newline="")
    got = duckdb.connect().sql(
        f"SELECT id, s, x FROM read_csv('{path}', delim = '\t', quote = '''', escape = '''', "
        "header = false, nullstr = '\\N', allow_quoted_nulls = false, "
        "columns = {'id': 'BIGINT', 's': 'VARCHAR', 'x': 'DOUBLE', 'at': 'VARCHAR'}) ORDER BY id").fetchall()
    assert got == [(1, "plain", 1.5), (2, None, None), (3, "", 0.0), (4, "\\N", -2.0),
                   (5, DIALECT_RECORDS[4]["s"], None)]


def test_csv_dialect_under_pipelinewise_names(server, bucket):
    text = stream_text(DIALECT_PROPERTIES, DIALECT_RECORDS)
    run = load(server, bucket, text, file_type="csv", delimiter="|", quotechar="'")
    assert "unknown key" not in run.stderr
    raw = get_bytes(server, bucket, only_key(server, bucket, "out/s/")).decode()
    assert raw.startswith("id|s|x|at\r\n1|plain|1.5|2024-01-02T03:04:05Z\r\n2|||\r\n3|''|0|\r\n")
    rows = csv_rows(raw, delimiter="|", quotechar="'")
    assert rows[0] == ["id", "s", "x", "at"]
    assert [r[1] for r in rows[1:]] == ["plain", "", "", "\\N", DIALECT_RECORDS[4]["s"]]


def test_csv_delimiter_that_can_appear_in_numbers_is_quoted(server, bucket):
    text = stream_text(DIALECT_PROPERTIES, DIALECT_RECORDS[:1])
    load(server, bucket, text, file_type="csv", csv_delimiter=".")
    raw = get_bytes(server, bucket, only_key(server, bucket, "out/s/")).decode()
    rows = csv_rows(raw, delimiter=".")
    assert rows == [["id", "s", "x", "at"], ["1", "plain", "1.5", "2024-01-02T03:04:05Z"]]


@pytest.mark.parametrize("settings,expected", [
    ({"csv_delimiter": "\"", "csv_quote_character": "\""}, "they must differ"),
    ({"delimiter": "'", "quotechar": "'"}, "they must differ"),
    ({"csv_delimiter": "\n"}, "other than a line break"),
    ({"csv_quote_character": "\r"}, "other than a line break"),
    ({"csv_delimiter": "::"}, "one ASCII character"),
    ({"csv_null_text": "N,A"}, "without the delimiter"),
    ({"csv_delimiter": ";", "delimiter": "|"}, '"csv_delimiter" and "delimiter"'),
])
def test_ambiguous_csv_dialects_are_refused(server, bucket, settings, expected):
    run = run_target(base_config(server, bucket, file_type="csv", **settings), SAMPLE)
    assert run.returncode == 1 and expected in run.stderr, run.stderr
    assert list_keys(server, bucket) == []


# ---- flattening ----

NESTED_PROPERTIES = {
    "id": {"type": "integer"},
    "customer": {"type": ["null", "object"], "properties": {
        "name": {"type": "string"},
        "address": {"type": ["null", "object"], "properties": {
            "city": {"type": "string"}, "geo": {"type": "object", "properties": {"lat": {"type": "number"}}}}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": "object"}}},
    "total": {"type": "number", "multipleOf": 0.01},
}
NESTED_RECORDS = [
    {"id": 1, "customer": {"name": "Ada", "address": {"city": "London", "geo": {"lat": 51.5}},
                           "tags": ["a", "b"], "extra": {"k": 1}}, "total": 10.25},
    {"id": 2, "customer": None, "total": 0},
    {"id": 3, "customer": {"name": "Grace", "address": None}, "total": 1},
]


def test_flatten_csv_columns_and_values(server, bucket):
    text = stream_text(NESTED_PROPERTIES, NESTED_RECORDS)
    load(server, bucket, text, prefix="d1", file_type="csv", flatten_max_depth=1)
    raw = get_bytes(server, bucket, only_key(server, bucket, "d1/s/")).decode()
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    assert reader.fieldnames == ["id", "customer__name", "customer__address", "customer__tags",
                                 "customer__extra", "total"]
    rows = list(reader)
    assert rows[0]["customer__name"] == "Ada"
    assert json.loads(rows[0]["customer__address"]) == {"city": "London", "geo": {"lat": 51.5}}
    assert json.loads(rows[0]["customer__tags"]) == ["a", "b"]
    assert json.loads(rows[0]["customer__extra"]) == {"k": 1}
    assert [rows[1][c] for c in reader.fieldnames] == ["2", "", "", "", "", "0.00"]
    assert rows[2]["customer__name"] == "Grace" and rows[2]["customer__address"] == ""

    load(server, bucket, text, prefix="d3", file_type="csv", flatten_max_depth=3,
         column_header_format="upper")
    raw = get_bytes(server, bucket, only_key(server, bucket, "d3/s/")).decode()
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    assert reader.fieldnames == ["ID", "CUSTOMER__NAME", "CUSTOMER__ADDRESS__CITY",
                                 "CUSTOMER__ADDRESS__GEO__LAT", "CUSTOMER__TAGS", "CUSTOMER__EXTRA", "TOTAL"]
    rows = list(reader)
    assert rows[0]["CUSTOMER__ADDRESS__CITY"] == "London" and rows[0]["CUSTOMER__ADDRESS__GEO__LAT"] == "51.5"
    assert rows[2]["CUSTOMER__ADDRESS__CITY"] == "" and rows[1]["CUSTOMER__NAME"] == ""


def test_flatten_parquet_and_jsonl(server, bucket):
    text = stream_text(NESTED_PROPERTIES, NESTED_RECORDS)
    load(server, bucket, text, prefix="pq", flatten_max_depth=2,
         column_types={"s": {"customer__address__city": "string"}})
    table = read_parquet(server, bucket, only_key(server, bucket, "pq/s/"))
    assert table.column_names == ["id", "customer__name", "customer__address__city",
                                  "customer__address__geo", "customer__tags", "customer__extra", "total"]
    assert str(table.schema.field("customer__address__geo").type) == "struct<lat: double>"
    assert table.column("customer__address__geo").to_pylist() == [{"lat": 51.5}, None, None]
    assert table.column("customer__name").to_pylist() == ["Ada", None, "Grace"]
    load(server, bucket, text, prefix="jl", file_type="jsonl", flatten_max_depth=1)
    lines = get_bytes(server, bucket, only_key(server, bucket, "jl/s/")).decode().splitlines()
    first = parse_json(lines[0])
    assert list(first) == ["id", "customer__name", "customer__address", "customer__tags",
                           "customer__extra", "total"]
    assert first["customer__address"] == {"city": "London", "geo": {"lat": Decimal("51.5")}}
    assert first["total"] == Decimal("10.25")


def test_flatten_name_collision_is_refused_at_schema(server, bucket):
    properties = {"a__b": {"type": "integer"},
                  "a": {"type": "object", "properties": {"b": {"type": "string"}}}}
    text = stream_text(properties, [{"a__b": 1, "a": {"b": "x"}}])
    run = run_target(base_config(server, bucket, file_type="csv", flatten_max_depth=1), text)
    assert run.returncode == 1
    assert 'input line 1, stream "s"' in run.stderr
    assert 'properties "a__b" and "a.b" both become column "a__b"' in run.stderr, run.stderr
    ok = run_target(base_config(server, bucket, file_type="csv"), text)
    assert ok.returncode == 0, ok.stderr
