"""`make bench`: records per second and peak memory of target-s3 on a generated stream,
beside DuckDB turning the same records into Parquet, in the same run.

Usage: python bench/run.py [--records N] [--runs R] [--scale K] [--shapes-only]
Writes the figures to bench/out/results.json and prints a table. Each target-s3 run
reads the Singer file on stdin and writes into a local S3-compatible server (s3s-fs,
or moto where s3s-fs is not installed) on a free loopback port; wall time and peak RSS come from the kernel (wait4) for the
whole process. DuckDB's time is that of its COPY statement alone, measured inside its
process, which leaves out interpreter start-up in DuckDB's favour.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from harness import (  # noqa: E402
    BINARY,
    MotoServer,
    S3sFsServer,
    SeaweedServer,
    base_config,
    clean_env,
    s3s_fs_binary,
)

OUT = HERE / "out"

# The "shapes" table: loads other than one narrow stream (bench/shapes.py), into a local
# folder, with the default settings but for a longer max_line_bytes where a line needs it.
SHAPE_RUNS = [
    ("200k records, 1 stream", "streams-1", {}),
    ("200k, 200 streams interleaved", "streams-200-interleaved", {}),
    ("200k, 1,000 streams interleaved", "streams-1000-interleaved", {}),
    ("200k, 5,000 streams interleaved", "streams-5000-interleaved", {}),
    ("200k, 1,000 streams one after another", "streams-1000-sequential", {}),
    ("200k, 5,000 streams one after another", "streams-5000-sequential", {}),
    ("200k, 20,000 streams one after another", "streams-20000-sequential", {}),
    ("20k records x 1,000 columns", "wide-1000-columns", {}),
    ("one 50 MiB record (a string)", "huge-string", {}),
    ("one 50 MiB record (1M-item array)", "huge-array", {}),
]


def measure(cmd, stdin_path=None, stdin_cmd=None, env=None):
    """Runs a command to its end; returns (wall seconds, peak RSS MiB, exit code, stdout)."""
    feeder = None
    if stdin_cmd:
        feeder = subprocess.Popen(stdin_cmd, stdout=subprocess.PIPE)
        stdin = feeder.stdout
    else:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if feeder:
            feeder.stdout.close()
            feeder.wait()
        elif stdin_path:
            stdin.close()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}):\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024, stdout


def duckdb_copy(records: Path, target: Path) -> tuple[float, float]:
    code = (
        "import duckdb, time, sys\n"
        "con = duckdb.connect()\ncon.execute('SET enable_progress_bar = false')\n"
        "start = time.perf_counter()\n"
        f"con.execute(\"COPY (SELECT * FROM read_json('{records}')) TO '{target}' (FORMAT parquet)\")\n"
        "print(time.perf_counter() - start)\n"
    )
    _, rss, stdout = measure([sys.executable, "-c", code])
    return float(stdout.strip()), rss


def batch_mode_input(records: Path, n: int, gzip_files: bool) -> Path:
    """The same records as the Singer SDK's batch mode sends them: SCHEMA, then per
    10,000 records (the SDK's default batch size) one JSONL file, gzipped at the SDK's
    level, a BATCH naming it and a STATE. Made once and kept beside the other inputs."""
    import gzip

    kind = "gz" if gzip_files else "plain"
    singer = OUT / f"batch-{kind}-{n}.singer"
    if singer.exists():
        return singer
    folder = OUT / f"batch-{kind}-{n}"
    folder.mkdir(exist_ok=True)
    schema = (OUT / f"one-{n}.singer").open().readline()
    encoding = {"format": "jsonl", "compression": "gzip" if gzip_files else "none"}
    with open(records) as source, open(f"{singer}.partial", "w") as out:
        out.write(schema)
        for i in range(0, n, 10_000):
            path = folder / (f"users-{i // 10_000}.json" + (".gz" if gzip_files else ""))
            chunk = "".join(source.readline() for _ in range(min(10_000, n - i))).encode()
            path.write_bytes(gzip.compress(chunk) if gzip_files else chunk)
            out.write(json.dumps({"type": "BATCH", "stream": "users", "encoding": encoding,
                                  "manifest": [path.as_uri()]}) + "\n")
            out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"users": {"id": i}}}}) + "\n")
    os.rename(f"{singer}.partial", singer)
    return singer


def tables_runs(one: Path, n: int, runs: int, tmp: Path) -> list[dict]:
    """The same stream into SeaweedFS: as plain Parquet objects, as an Iceberg table in
    its REST catalog (a commit at the end), so the two differ only by the table, and
    then replacing that table's rows (`load_method: overwrite`)."""
    server = SeaweedServer(tmp)
    results = []
    try:
        server.client().create_bucket(Bucket="plain")
        for name, config in [
            ("parquet, 1 stream, SeaweedFS", lambda i: base_config(
                server, "plain", file_type="parquet", object_key_path=f"bench{i}")),
            ("iceberg table (REST catalog), SeaweedFS", lambda i: server.iceberg_config(f"bench{i}")),
            # The same table's rows replaced: its old files marked deleted in one snapshot.
            ("iceberg table replaced (overwrite), SeaweedFS",
             lambda i: server.iceberg_config(f"bench{i}", load_method="overwrite")),
        ]:
            measured = []
            for i in range(runs):
                path = tmp / "config.json"
                path.write_text(json.dumps(config(i)))
                wall, rss, stdout = measure([str(BINARY), "--config", str(path)], one,
                                            env={**clean_env(), "RUST_LOG": "warn"})
                assert stdout.strip(), "no STATE written"
                measured.append((wall, rss))
            results.append({"name": f"target-s3 {name}", "records": n,
                            "wall_s": statistics.median(w for w, _ in measured),
                            "peak_rss_mib": max(r for _, r in measured)})
    finally:
        server.stop()
    return results


def shapes_runs(runs: int, tmp: Path) -> list[dict]:
    """Each shape into a local folder, then into the S3 server (s3s-fs; one run each,
    as the table's per-object cost over HTTP is what it adds): wall (median), input
    MB/s, peak RSS (max), the objects written and objects per second."""
    from shapes import path_of

    results = [shape_run(name, path_of(OUT, shape), settings, runs, FolderStore(tmp), tmp)
               for name, shape, settings in SHAPE_RUNS]
    if s3s_fs_binary():
        server = S3sFsServer(tmp)
        try:
            results += [shape_run(name, path_of(OUT, shape), settings, 1, ServerStore(server), tmp)
                        for name, shape, settings in SHAPE_RUNS]
        finally:
            server.stop()
    return results


class FolderStore:
    """A fresh local folder per run."""
    where = "a local folder"

    def __init__(self, tmp: Path):
        self.tmp, self.n = tmp, 0

    def config(self) -> dict:
        self.n += 1
        self.folder = self.tmp / f"shape-{self.n}"
        self.folder.mkdir()
        return {"bucket": "bench", "aws_endpoint": self.folder.as_uri()}

    def objects(self) -> int:
        count = sum(len(files) for _, _, files in os.walk(self.folder))
        subprocess.run(["rm", "-rf", str(self.folder)], check=True)
        return count


class ServerStore:
    """A fresh bucket of the S3 server per run."""
    where = "the S3 server (s3s-fs)"

    def __init__(self, server):
        self.server = server

    def config(self) -> dict:
        self.bucket = self.server.new_bucket()
        return base_config(self.server, self.bucket)

    def objects(self) -> int:
        pages = self.server.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sum(len(page.get("Contents", [])) for page in pages)


def shape_run(name: str, path: Path, settings: dict, runs: int, store, tmp: Path) -> dict:
    measured = []
    for _ in range(runs):
        config = tmp / "shape-config.json"
        config.write_text(json.dumps({**store.config(), "file_type": "parquet", "object_key_path": "bench",
                                      **settings}))
        wall, rss, stdout = measure([str(BINARY), "--config", str(config)], path,
                                    env={**clean_env(), "RUST_LOG": "warn"})
        assert stdout.strip(), "no STATE written"
        measured.append((wall, rss, store.objects()))
    wall = statistics.median(w for w, _, _ in measured)
    objects = measured[-1][2]
    return {"name": name, "store": store.where, "input_mb": path.stat().st_size / 1e6, "wall_s": wall,
            "input_mb_per_s": path.stat().st_size / 1e6 / wall,
            "peak_rss_mib": max(r for _, r, _ in measured), "objects": objects,
            "objects_per_s": objects / wall}


def print_shapes(shapes: list[dict]) -> None:
    for where in dict.fromkeys(r["store"] for r in shapes):
        print(f"\nshapes, into {where}\n{'load':42} {'MB':>6} {'wall s':>7} {'MB/s':>7} "
              f"{'peak RSS MiB':>13} {'objects':>8} {'objects/s':>10}")
        for r in (r for r in shapes if r["store"] == where):
            print(f"{r['name']:42} {r['input_mb']:>6.0f} {r['wall_s']:>7.2f} {r['input_mb_per_s']:>7.0f} "
                  f"{r['peak_rss_mib']:>13.0f} {r['objects']:>8} {r['objects_per_s']:>10,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=5, help="also run 1 stream with the input repeated K times")
    parser.add_argument("--shapes-only", action="store_true", help="run only the shapes table")
    args = parser.parse_args()
    if args.shapes_only:
        with tempfile.TemporaryDirectory() as tmp:
            shapes = shapes_runs(args.runs, Path(tmp))
        print_shapes(shapes)
        (OUT / "shapes.json").write_text(json.dumps(shapes, indent=2) + "\n")
        return
    n = args.records
    subprocess.run([sys.executable, str(HERE / "generate.py"), str(OUT), str(n)], check=True)
    one, twenty, records = OUT / f"one-{n}.singer", OUT / f"twenty-{n}.singer", OUT / f"records-{n}.jsonl"
    input_mb = one.stat().st_size / 1e6
    batch_gz, batch_plain = batch_mode_input(records, n, True), batch_mode_input(records, n, False)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        duck = [duckdb_copy(records, Path(tmp) / "duck.parquet") for _ in range(args.runs)]
        duck_wall = statistics.median(w for w, _ in duck)
        results.append({"name": "duckdb COPY read_json -> parquet", "records": n,
                        "wall_s": duck_wall, "peak_rss_mib": max(r for _, r in duck)})

        # s3s-fs (Rust) when installed: it takes far less of the two cores than moto's
        # Python server, which would otherwise be measured along with target-s3.
        server = S3sFsServer(Path(tmp)) if s3s_fs_binary() else MotoServer(Path(tmp))
        print(f"S3-compatible server: {server.name}")
        try:
            one_thread = {"parallel_decoding": False}
            # The store verifies a CRC64NVME of every upload by default (learnt at
            # preflight); the same run without one shows what the checksums cost.
            no_checksums = {"checksum_algorithm": "none", "conditional_writes": "off"}
            cases = [("parquet, 1 stream", "parquet", one, None, n, {}),
                     ("parquet, 1 stream, no checksums", "parquet", one, None, n, no_checksums),
                     ("parquet, 1 stream, one decoding thread", "parquet", one, None, n, one_thread),
                     ("parquet, 1 stream, BATCH of gzipped JSONL", "parquet", batch_gz, None, n, {}),
                     ("parquet, 1 stream, BATCH of JSONL", "parquet", batch_plain, None, n, {}),
                     ("csv, 1 stream", "csv", one, None, n, {}),
                     ("parquet, 20 streams", "parquet", twenty, None, n, {}),
                     ("csv, 20 streams", "csv", twenty, None, n, {})]
            if args.scale > 1:
                cases.append((f"parquet, 1 stream, input x{args.scale}", "parquet", None,
                              ["cat"] + [str(one)] * args.scale, n * args.scale, {}))
            # Round after round of every case, so a change in the machine's speed during
            # the benchmark touches every case alike and their ratios stay fair.
            runs = {case[0]: [] for case in cases}
            for round_ in range(args.runs):
                for name, file_type, path, feeder, count, settings in cases:
                    if feeder is not None and round_ > 0:
                        continue
                    bucket = server.new_bucket()
                    config = Path(tmp) / "config.json"
                    config.write_text(json.dumps(base_config(server, bucket, file_type=file_type,
                                                             object_key_path="bench", **settings)))
                    wall, rss, stdout = measure([str(BINARY), "--config", str(config)], path, feeder,
                                                env={**clean_env(), "RUST_LOG": "warn"})
                    assert stdout.strip(), "no STATE written"
                    runs[name].append((wall, rss))
            for name, _, _, _, count, _ in cases:
                wall = statistics.median(w for w, _ in runs[name])
                results.append({"name": f"target-s3 {name}", "records": count, "wall_s": wall,
                                "peak_rss_mib": max(r for _, r in runs[name])})
        finally:
            server.stop()
        results.extend(tables_runs(one, n, args.runs, Path(tmp)))
        shapes = shapes_runs(args.runs, Path(tmp))

    for r in results:
        r["records_per_s"] = r["records"] / r["wall_s"]
        r["input_mb_per_s"] = input_mb * r["records"] / n / r["wall_s"]
        r["vs_duckdb"] = r["wall_s"] / duck_wall * n / r["records"]
    print(f"{'run':48} {'records':>9} {'wall s':>7} {'rec/s':>10} {'MB/s':>7} {'peak RSS MiB':>13} {'x DuckDB':>9}")
    for r in results:
        print(f"{r['name']:48} {r['records']:>9} {r['wall_s']:>7.2f} {r['records_per_s']:>10,.0f} "
              f"{r['input_mb_per_s']:>7.0f} {r['peak_rss_mib']:>13.0f} {r['vs_duckdb']:>9.2f}")
    walls = {r["name"]: r["wall_s"] for r in results}
    record_lines = walls["target-s3 parquet, 1 stream"]
    for batch in ("BATCH of gzipped JSONL", "BATCH of JSONL"):
        print(f"{batch} / RECORD lines: {walls[f'target-s3 parquet, 1 stream, {batch}'] / record_lines:.2f}x")
    print(f"checksums and conditional writes / neither: "
          f"{record_lines / walls['target-s3 parquet, 1 stream, no checksums']:.2f}x")
    print_shapes(shapes)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "shapes.json").write_text(json.dumps(shapes, indent=2) + "\n")
    print(f"\n(x DuckDB: wall time per record relative to DuckDB's; input {input_mb:.0f} MB of Singer lines; "
          f"written to {OUT / 'results.json'})")


if __name__ == "__main__":
    main()
