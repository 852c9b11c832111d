"""Test harness: a real S3-compatible server on a free loopback port, and a runner for
the target-s3 binary. Used by the tests (through conftest.py) and by `make demo`.

The server is moto's (S3 and STS on one port, path-style). Only the process started
here is ever stopped, by its pid.
"""

from __future__ import annotations

import base64
import glob
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BINARY = Path(os.environ.get("TARGET_S3_BIN", ROOT / "target" / "release" / "target-s3"))

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key-do-not-log"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An S3-compatible server on 127.0.0.1:<free port>, started and stopped by this
    object (only the process it started, by its pid)."""

    name = "server"

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{self.name}-{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(log_dir), stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def command(self, log_dir: Path) -> list[str]:
        raise NotImplementedError

    def _wait_ready(self) -> None:
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early (port {self.port} taken?)")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within 30 s")

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def incomplete_uploads(self, bucket: str) -> list[str]:
        """Keys of the multipart uploads begun in `bucket` and neither completed nor
        aborted."""
        uploads = self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return [u["Key"] for u in uploads]

    def new_bucket(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class MotoServer(Server):
    """moto's server: S3, STS, Glue and S3 Tables on one port; does not check
    signatures. Started through moto_server.py, which fixes two of moto's S3 Tables
    answers that the AWS SDK for Rust cannot parse (see there)."""

    name = "moto"

    def command(self, log_dir: Path) -> list[str]:
        patched = Path(__file__).resolve().parent / "moto_server.py"
        return [sys.executable, str(patched), "-H", "127.0.0.1", "-p", str(self.port)]

    def assumed_roles(self) -> list[dict]:
        """The STS AssumeRole calls the server has answered, from moto's state dump."""
        with urllib.request.urlopen(self.endpoint + "/moto-api/data.json", timeout=10) as r:
            return json.load(r).get("sts", {}).get("AssumedRole", [])


def s3s_fs_binary() -> Path | None:
    found = shutil.which("s3s-fs")
    if found:
        return Path(found)
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    candidate = cargo_home / "bin" / "s3s-fs"
    return candidate if candidate.exists() else None


class S3sFsServer(Server):
    """s3s-fs: a file-system-backed S3 server in Rust that verifies SigV4 signatures."""

    name = "s3s-fs"

    def command(self, log_dir: Path) -> list[str]:
        root = self.root = log_dir / f"s3s-fs-{self.port}"
        root.mkdir()
        binary = s3s_fs_binary()
        if binary is None:
            raise RuntimeError("s3s-fs is not installed: `make test` installs it")
        return [str(binary), "--host", "127.0.0.1", "--port", str(self.port),
                "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, str(root)]

    def incomplete_uploads(self, bucket: str) -> list[str]:
        # s3s-fs does not implement ListMultipartUploads; an upload in progress is the
        # attributes file it writes at CreateMultipartUpload and removes at completion
        # or abort: `.bucket-<b64 bucket>.object-<b64 key>.upload-<id>.metadata.json`.
        encode = lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")  # noqa: E731
        decode = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)).decode()  # noqa: E731
        found = re.compile(rf"^\.bucket-{re.escape(encode(bucket))}\.object-([A-Za-z0-9_-]+)\.upload-[0-9a-f-]+\.metadata\.json$")
        return sorted(decode(m.group(1)) for p in self.root.iterdir() if (m := found.match(p.name)))


def free_port_pair() -> int:
    """A free port whose port + 10000 is free too (SeaweedFS puts gRPC there)."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free pair of ports")


class SeaweedServer(Server):
    """SeaweedFS in one process (`weed mini`): an S3 server that verifies SigV4, and its
    Iceberg REST catalog on a port of its own, with the warehouse `warehouse` (a table
    bucket). OAuth2 client credentials for the catalog are the S3 key and secret."""

    name = "seaweedfs"
    warehouse = "warehouse"

    def __init__(self, log_dir: Path):
        self.catalog_port = free_port_pair()
        self.others = [free_port_pair() for _ in range(4)]
        super().__init__(log_dir)
        self.catalog_uri = f"http://127.0.0.1:{self.catalog_port}"
        # Its ports open before the table bucket exists: ready once it says every
        # component is (the admin server starts last).
        deadline = time.time() + 60
        while "Admin        ready" not in self.log_path.read_text(errors="replace"):
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"SeaweedFS did not start within 60 s: see {self.log_path}")
            time.sleep(0.2)

    def command(self, log_dir: Path) -> list[str]:
        self.port = free_port_pair()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        root = log_dir / f"seaweedfs-{self.port}"
        root.mkdir()
        identities = {"identities": [{"name": "admin", "credentials": [
            {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        (root / "s3.json").write_text(json.dumps(identities))
        master, volume, filer, admin = self.others
        weed = shutil.which("weed", path=str(VENV_BIN)) or "weed"
        return [weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.port={self.port}", f"-s3.config={root / 's3.json'}",
                f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
                f"-admin.port={admin}", "-webdav=false", "-admin.ui=false",
                f"-s3.port.iceberg={self.catalog_port}", f"-tableBucket={self.warehouse}",
                "-s3.port.lance=0"]

    def catalog(self):
        """pyiceberg's client of the REST catalog."""
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog("seaweedfs", uri=self.catalog_uri, warehouse=self.warehouse,
                           credential=f"{ACCESS_KEY}:{SECRET_KEY}", **self.s3_properties())

    def s3_properties(self) -> dict:
        return {"s3.endpoint": self.endpoint, "s3.access-key-id": ACCESS_KEY,
                "s3.secret-access-key": SECRET_KEY, "s3.region": "us-east-1",
                "s3.path-style-access": "true"}

    def object_store_options(self) -> dict:
        """The same for readers built on Rust's object_store (polars)."""
        return {"aws_endpoint_url": self.endpoint, "aws_access_key_id": ACCESS_KEY,
                "aws_secret_access_key": SECRET_KEY, "aws_region": "us-east-1",
                "aws_allow_http": "true", "aws_virtual_hosted_style_request": "false"}

    def iceberg_config(self, namespace: str, **extra) -> dict:
        """A target-s3 config that lands streams as tables in this catalog."""
        return {"file_type": "parquet", "table_format": "iceberg",
                "iceberg_catalog_type": "rest", "iceberg_catalog_uri": self.catalog_uri,
                "iceberg_warehouse": self.warehouse, "iceberg_namespace": namespace,
                "iceberg_credential": f"{ACCESS_KEY}:{SECRET_KEY}",
                "aws_endpoint": self.endpoint, "aws_access_key_id": ACCESS_KEY,
                "aws_secret_access_key": SECRET_KEY, "aws_region": "us-east-1", **extra}


class PostgresServer:
    """Debian's PostgreSQL on 127.0.0.1:<free port>, its data in a fresh temporary folder
    (owned by the postgres user, as initdb asks), stopped by `stop`. Connections over the
    socket in that folder are trusted; TCP ones use `host_auth` (`trust`, or
    `scram-sha-256` to check passwords)."""

    def __init__(self, host_auth: str = "trust"):
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.data = Path(tempfile.mkdtemp(prefix="target-s3-pg-"))
        shutil.chown(self.data, "postgres")
        self.as_postgres = ["runuser", "-u", "postgres", "--"]
        subprocess.run(self.as_postgres + [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                                           "--auth-local=trust", f"--auth-host={host_auth}"],
                       check=True, capture_output=True)
        self.port = free_port()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        subprocess.run(self.as_postgres + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-w",
                                           "start", "-l", str(self.data / "log")], check=True, capture_output=True)

    @staticmethod
    def missing() -> str | None:
        """Why a server cannot be started here, or None."""
        if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
            return "needs Debian's postgresql (`make postgres`)"
        if os.geteuid() != 0:
            return "needs root (to run initdb as the postgres user)"
        return None

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Runs `sql` as the postgres user over the socket; rows as `a|b` lines."""
        done = subprocess.run(self.as_postgres + [str(self.bin / "psql"), "-h", str(self.data), "-p", str(self.port),
                                                  "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1",
                                                  "-q", "-At", "-c", sql],
                              check=True, capture_output=True, text=True)
        return done.stdout

    def stop(self) -> None:
        subprocess.run(self.as_postgres + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(self.data, ignore_errors=True)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list:
        return [json.loads(line) for line in self.stdout.splitlines()]


def clean_env() -> dict:
    """The environment without the caller's AWS settings, and never the instance
    metadata service: tests reach 127.0.0.1 only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


def build_env() -> dict:
    """The environment for pip, uv or Meltano building the wheel from the checkout:
    cargo's target folder and profile of the binary under test, so cargo finds every
    crate built already and builds nothing again."""
    env = clean_env()
    profile = {"debug": "dev"}.get(BINARY.parent.name, BINARY.parent.name)
    env["CARGO_TARGET_DIR"] = str(BINARY.parent.parent)
    env["MATURIN_PEP517_ARGS"] = f"--profile {profile} --locked"
    return env


def run_target(config: dict, input_text: str, *args: str, timeout: float = 120, env: dict | None = None) -> Run:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
        config_path = f.name
    try:
        proc = subprocess.run(
            [str(BINARY), "--config", config_path, *args],
            input=input_text.encode(),
            capture_output=True,
            timeout=timeout,
            env={**clean_env(), **(env or {})},
        )
    finally:
        os.unlink(config_path)
    return Run(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def base_config(server: MotoServer, bucket: str, **extra) -> dict:
    config = {
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "aws_region": "us-east-1",
        "aws_endpoint": server.endpoint,
        "bucket": bucket,
        "file_type": "parquet",
        "object_key_path": "exports/run",
    }
    config.update(extra)
    return config


def list_keys(server: MotoServer, bucket: str, prefix: str = "") -> list[str]:
    client = server.client()
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def get_bytes(server: MotoServer, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def read_parquet(server: MotoServer, bucket: str, key: str):
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(get_bytes(server, bucket, key)))


def read_csv(server: MotoServer, bucket: str, key: str) -> list[list[str]]:
    import csv

    text = get_bytes(server, bucket, key).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def table_name(stream: str) -> str:
    """The documented key-safe rule, restated independently for the tests: letters and
    digits of any script, `-`, `_` and `.` stay, anything else becomes `%XX` per UTF-8
    byte; dots alone are encoded too, and the empty name is `_`."""
    if stream == "":
        return "_"
    dots_only = set(stream) <= {"."}
    return "".join(
        c if not dots_only and (c.isalnum() or c in "-_.") else "".join(f"%{b:02X}" for b in c.encode())
        for c in stream
    )


def records_by_stream(singer_text: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in singer_text.splitlines():
        if line.strip():
            message = json.loads(line)
            if message.get("type") == "RECORD":
                out.setdefault(message["stream"], []).append(message["record"])
    return out


def parse_json(text: str):
    """JSON with every number exact: floats as Decimal, integers as int."""
    from decimal import Decimal

    return json.loads(text, parse_float=Decimal)


def singer_records(singer_text: str) -> dict[str, list]:
    """RECORD values per stream, numbers exact, in input order."""
    out: dict[str, list] = {}
    for line in singer_text.splitlines():
        if line.strip():
            message = parse_json(line)
            if message.get("type") == "RECORD":
                out.setdefault(message["stream"], []).append(message["record"])
    return out


def expected_value(value, arrow_type):
    """What a reader should see for the JSON input `value` in a column of `arrow_type`:
    the type table of the spec, restated independently of the target's code."""
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa

    if value is None:
        return None
    if isinstance(arrow_type, pa.BaseExtensionType) and arrow_type.extension_name == "arrow.json":
        return value  # compared after json.loads of what was read
    if pa.types.is_struct(arrow_type):
        return {f.name: expected_value(value.get(f.name), f.type) for f in arrow_type}
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return [expected_value(v, arrow_type.value_type) for v in value]
    if pa.types.is_timestamp(arrow_type):
        parsed = dt.datetime.fromisoformat(value.replace(" ", "T"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.astimezone(dt.timezone.utc)
    if pa.types.is_date(arrow_type):
        return dt.date.fromisoformat(value[:10])
    if pa.types.is_time(arrow_type):
        return dt.time.fromisoformat(value)
    if pa.types.is_decimal(arrow_type):
        return Decimal(str(value))
    if pa.types.is_floating(arrow_type):
        return float(value)
    return value


def actual_value(value, arrow_type):
    """A value as read, with JSON text decoded (numbers exact) for comparison."""
    import pyarrow as pa

    if value is None:
        return None
    if isinstance(arrow_type, pa.BaseExtensionType) and arrow_type.extension_name == "arrow.json":
        return parse_json(value)
    if pa.types.is_struct(arrow_type):
        return {f.name: actual_value(value[f.name], f.type) for f in arrow_type}
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return [actual_value(v, arrow_type.value_type) for v in value]
    return value


def time_text(value: str) -> str:
    """A time as `parquet_compatibility: portable` stores it: `HH:MM:SS`, then six
    fraction digits when there is a fraction (what Python's isoformat writes)."""
    import pyarrow as pa

    return expected_value(value, pa.time64("us")).isoformat()


def decimal_text(value, scale: int) -> str:
    """A decimal as `portable` stores one wider than 38 digits: every digit, at the scale."""
    from decimal import Context, Decimal

    exact = Decimal(str(value)).quantize(Decimal(1).scaleb(-scale), context=Context(prec=200))
    return format(exact, "f")


def sent_value(record: dict, field, text_columns: dict | None = None):
    """What a reader should see in column `field` (a pyarrow field) for `record`; columns
    in `text_columns` are stored as text, made by the function given for each."""
    value = record.get(field.name)
    if text_columns and field.name in text_columns and value is not None:
        return text_columns[field.name](value)
    return expected_value(value, field.type)


def compare_rows(table, records: list[dict], text_columns: dict | None = None) -> None:
    """Asserts every row of a pyarrow table equals its input record, column by column
    (`text_columns`: see sent_value)."""
    rows = table.to_pylist()
    assert len(rows) == len(records), (len(rows), len(records))
    for n, (row, record) in enumerate(zip(rows, records)):
        for field in table.schema:
            got = actual_value(row[field.name], field.type)
            want = sent_value(record, field, text_columns)
            assert got == want, f"row {n}, column {field.name}: read {got!r}, sent {want!r}"
            if isinstance(want, float) and want == 0:
                assert str(got) == str(want), f"row {n}, column {field.name}: sign of zero"


# The project's own Singer fixtures, read once for every test file.
FIXTURES = ROOT / "fixtures"
SAMPLE = (FIXTURES / "sample.singer").read_text()
EDGE = (FIXTURES / "edge_values.singer").read_text()
EDGE_RECORDS = singer_records(EDGE)["edge"]
# The edge columns `parquet_compatibility: portable` (the default) stores as text.
EDGE_TEXT = {"t": time_text, "wide": lambda v: decimal_text(v, 2)}


def load(server, bucket, text, prefix="out", **settings):
    """Runs the target on `text` into `prefix`, and asserts it succeeded."""
    run = run_target(base_config(server, bucket, object_key_path=prefix, **settings), text)
    assert run.returncode == 0, run.stderr
    return run


def only_key(server, bucket, prefix):
    [key] = list_keys(server, bucket, prefix)
    return key
