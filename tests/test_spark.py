"""Spark 3.3, a JVM Parquet reader (what Databricks, EMR and Glue jobs of that generation
run), reads the Parquet objects the type tests write, with Spark's default settings,
every value compared with what the tap sent.

One local Spark session (`local[1]`, no UI, bound to 127.0.0.1) serves every test. The
target writes into a local folder (`aws_endpoint: file://…`), so Spark reads files and
never the network. Each object is copied under a plain name first: Hadoop paths would
read the `%XX` of key-safe table names as escapes. Spark renders each row as JSON inside
the JVM (timestamps in UTC to the microsecond), because pyspark's own conversion to
Python datetimes fails on year 1.
"""

import datetime as dt
import os
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness import EDGE, EDGE_TEXT, parse_json, run_target, sent_value, singer_records, table_name
from test_types import BIG, MIXED, SDK_FIXTURES, TIMES, VALUE_EQUAL, stream_text

pytest.importorskip("pyspark", reason="SPARK TESTS SKIPPED: pyspark is missing (`make test` installs it)")

# Spark's JSON rendering of a row; options of to_json, not settings of the session.
AS_JSON = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX", "timeZone": "UTC", "ignoreNullFields": "false"}


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    if shutil.which("java") is None:
        pytest.skip("SPARK TESTS SKIPPED: java is missing (`make test` installs openjdk-17-jre-headless)")
    from pyspark.sql import SparkSession

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["SPARK_LOCAL_HOSTNAME"] = "localhost"
    session = (SparkSession.builder.master("local[1]").appName("target-s3-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.memory", "512m")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def write(tmp_path, name, text, **settings):
    """Runs the target into a local folder; returns each stream's objects, in key order."""
    lake = tmp_path / name
    lake.mkdir()
    config = {"aws_endpoint": f"file://{lake}", "bucket": "lake", "file_type": "parquet",
              "object_key_path": "out", **settings}
    run = run_target(config, text)
    assert run.returncode == 0, run.stderr
    return {stream: sorted((lake / "lake" / "out" / table_name(stream)).glob("*.parquet"))
            for stream in singer_records(text)}


def spark_rows(spark, files, tmp_path):
    """Every row of `files` as Spark reads them, each a dict from Spark's JSON, in file
    and row order. Files with one schema are read as one DataFrame."""
    from pyspark.sql import functions as F

    groups: dict[str, list[int]] = {}
    for n, path in enumerate(files):
        groups.setdefault(str(pq.read_schema(path)), []).append(n)
    rows: dict[int, list] = {}
    for members in groups.values():
        folder = Path(tempfile.mkdtemp(prefix="spark-", dir=tmp_path))
        for n in members:
            shutil.copy(files[n], folder / f"{n:05d}.parquet")
        df = spark.read.parquet(str(folder))
        read = df.select(F.input_file_name().alias("file"), F.monotonically_increasing_id().alias("at"),
                         F.to_json(F.struct("*"), AS_JSON).alias("row")).collect()
        for r in sorted(read, key=lambda r: (r.file, r.at)):
            rows.setdefault(int(Path(r.file).stem), []).append(parse_json(r.row))
    return [row for n in range(len(files)) for row in rows.get(n, [])]


def from_spark(value, arrow_type):
    """A value of Spark's JSON as the Python value to compare with what was sent."""
    if value is None:
        return None
    if isinstance(arrow_type, pa.BaseExtensionType):
        return parse_json(value)  # JSON text columns: Spark reads the text
    if pa.types.is_struct(arrow_type):
        return {f.name: from_spark(value[f.name], f.type) for f in arrow_type}
    if pa.types.is_list(arrow_type):
        return [from_spark(v, arrow_type.value_type) for v in value]
    if pa.types.is_timestamp(arrow_type):
        return dt.datetime.fromisoformat(value)
    if pa.types.is_date(arrow_type):
        return dt.date.fromisoformat(value)
    if pa.types.is_decimal(arrow_type):
        return Decimal(str(value))
    if pa.types.is_floating(arrow_type):
        return float(value)
    return value


def assert_spark_reads_sent_values(spark, tmp_path, files, records, text_columns=None):
    rows = spark_rows(spark, files, tmp_path)
    assert len(rows) == len(records), (len(rows), len(records))
    done = 0
    for path in files:
        schema = pq.read_schema(path)
        count = pq.read_metadata(path).num_rows
        for n in range(done, done + count):
            for field in schema:
                got = from_spark(rows[n][field.name], field.type)
                want = sent_value(records[n], field, text_columns)
                assert got == want, f"row {n}, column {field.name}: Spark read {got!r}, sent {want!r}"
                if isinstance(want, float) and want == 0:
                    assert str(got) == str(want), f"row {n}, column {field.name}: sign of zero"
        done += count


EDGE_SPARK_TYPES = (
    "struct<id:bigint,i:bigint,f:double,big:decimal(38,0),dec:decimal(38,10),wide:string,s:string,"
    "b:boolean,ts:timestamp,d:date,t:string,obj:struct<a:bigint,b:struct<c:string,ts:timestamp>,"
    "l:array<double>>,arr:array<string>,deep:array<array<struct<x:bigint,y:array<boolean>>>>,"
    "any:string,mixed:string>")


def test_spark_reads_the_edge_values_exactly_with_its_defaults(spark, tmp_path):
    """Years 0001 and 9999 to the microsecond, int64 extremes, -0.0, decimal(38), the
    wide decimal and the times as text, nested structs and lists, unicode and controls."""
    files = write(tmp_path, "edge", EDGE)["edge"]
    assert spark.read.parquet(str(files[0])).schema.simpleString() == EDGE_SPARK_TYPES
    assert_spark_reads_sent_values(spark, tmp_path, files, singer_records(EDGE)["edge"], EDGE_TEXT)


# The other Parquet objects the type tests write (test_types.py), with the settings they
# use; the expected rows where not every record is stored as sent.
SKIPPED = {"s": [{"id": 1, "n": Decimal("1.5")}, {"id": 5}]}
WIDE = {"column_types": {"s": {"n": "decimal(60,0)"}}}
COERCED = stream_text({"i": {"type": "integer"}, "b": {"type": "boolean"}, "s": {"type": "string"}},
                      ['{"type": "RECORD", "stream": "s", "record": {"i": "42", "b": "true", "s": 12.50}}',
                       {"i": 1, "b": False, "s": {"k": [1]}}])
CASES = {
    "one-record-objects": (EDGE, {"max_batch_rows": 1}, None, EDGE_TEXT),
    "invalid-records-skipped": (MIXED, {"invalid_records": "skip"}, SKIPPED, None),
    "decimal-38-override": (BIG, {"column_types": {"s": {"n": "decimal(38,0)"}}}, None, None),
    "wide-decimal-override": (BIG, WIDE, None, {"n": str}),
    "rounded-floats": (BIG, {"inexact_numbers": "warn"}, None, None),
    "milliseconds": (TIMES, {"timestamp_unit": "ms", "invalid_records": "skip"},
                     {"s": [{"ts": "2024-01-01T00:00:00.123Z"}]}, None),
    "microseconds": (TIMES, {"timestamp_unit": "us", "invalid_records": "skip"},
                     {"s": [{"ts": "2024-01-01T00:00:00.123Z"}]}, None),
    "strings-as-decimals": (stream_text({"id": {"type": "integer"}, "amount": {"type": "string"}},
                                        [{"id": 1, "amount": "19.99"}, {"id": 2, "amount": "5"}], key=["id"]),
                            {"column_types": {"s": {"amount": "decimal(10,2)"}}, "validate_records": False},
                            {"s": [{"id": 1, "amount": "19.99"}, {"id": 2, "amount": "5.00"}]}, None),
    "coerced": (COERCED, {"validate_records": False},
                {"s": [{"i": 42, "b": True, "s": "12.50"}, {"i": 1, "b": False, "s": '{"k":[1]}'}]}, None),
    "unknown-fields": (stream_text({"a": {"type": "integer"}}, [{"a": 1, "x": 1}, {"a": 2, "x": 2, "o": {"y": 1}}]),
                       {}, None, None),
    **{name: ((SDK_FIXTURES / f"{name}.singer").read_text(), {}, None, None) for name in VALUE_EQUAL},
}


@pytest.mark.parametrize("case", CASES)
def test_spark_reads_what_the_type_tests_write(spark, tmp_path, case):
    text, settings, expected, text_columns = CASES[case]
    written = write(tmp_path, "lake", text, **settings)
    for stream, records in (expected or singer_records(text)).items():
        assert_spark_reads_sent_values(spark, tmp_path, written[stream], records, text_columns)


OLD = stream_text({"d": {"type": "string", "format": "date"}, "ts": {"type": "string", "format": "date-time"}},
                  [{"d": "0001-01-01", "ts": "0001-01-01T00:00:00Z"}, {"d": "1000-03-01", "ts": "1000-03-01T12:00:00Z"},
                   {"d": "1581-12-31", "ts": "1581-12-31T23:59:59.999999Z"},
                   # The last Julian day, and one the hybrid calendar skips.
                   {"d": "1582-10-04", "ts": "1582-10-04T12:00:00Z"}, {"d": "1582-10-10", "ts": "1582-10-10T00:00:00Z"}])


def test_old_dates_need_no_spark_setting_because_the_footer_states_their_calendar(spark, tmp_path):
    """Spark 3 reads dates before 1582-10-15 of a file it did not write only when the file
    says its calendar; the portable footer does, and the values come back unshifted. The
    same file without it (`arrow`) raises, as the issue saw."""
    portable = write(tmp_path, "portable", OLD)["s"]
    assert_spark_reads_sent_values(spark, tmp_path, portable, singer_records(OLD)["s"])
    arrow = write(tmp_path, "arrow", OLD, parquet_compatibility="arrow")["s"]
    with pytest.raises(Exception, match="SparkUpgradeException"):
        spark.read.parquet(str(arrow[0])).collect()


TIME = stream_text({"t": {"type": "string", "format": "time"}}, [{"t": "12:30:00.5"}])


@pytest.mark.parametrize("text,settings,refusal", [
    (TIME, {}, r"Illegal Parquet type: INT64 \(TIME\(MICROS"),
    (BIG, WIDE, "decimal can only support precision up to 38"),
    (TIMES, {"timestamp_unit": "ns", "invalid_records": "skip"}, r"Illegal Parquet type: INT64 \(TIMESTAMP\(NANOS"),
], ids=["time", "wide-decimal", "nanoseconds"])
def test_what_arrow_keeps_spark_cannot_open(spark, tmp_path, text, settings, refusal):
    """Why `portable` is the default: each type it avoids makes the whole file unreadable
    in Spark 3, while `portable` writes the same values in a form Spark reads."""
    [path] = write(tmp_path, "arrow", text, parquet_compatibility="arrow", **settings)["s"]
    with pytest.raises(Exception, match=refusal):
        spark.read.parquet(str(path)).collect()
