"""`make demo`: the main job end to end with no AWS account.

Starts moto's S3-compatible server on a free loopback port, creates a bucket, pipes
fixtures/sample.singer through the release binary (Parquet, then CSV), prints the STATE
lines, the keys written and the rows read back with pyarrow, then stops the server.
Then the same input lands as Apache Iceberg tables in SeaweedFS's REST catalog, read
back with pyiceberg.
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import (  # noqa: E402
    ROOT,
    MotoServer,
    SeaweedServer,
    base_config,
    get_bytes,
    list_keys,
    read_parquet,
    run_target,
)


def main() -> int:
    sample = (ROOT / "fixtures" / "sample.singer").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        server = MotoServer(Path(tmp))
        try:
            bucket = server.new_bucket()
            print(f"S3-compatible server at {server.endpoint}, bucket {bucket}\n")
            for file_type in ("parquet", "csv"):
                config = base_config(server, bucket, file_type=file_type,
                                     object_key_path=f"demo/{file_type}",
                                     date_partition_format="%Y%m%d")
                run = run_target(config, sample)
                print(f"== target-s3 --config <{file_type} config> < fixtures/sample.singer")
                print(run.stderr.rstrip())
                if run.returncode != 0:
                    print(f"target-s3 failed with exit code {run.returncode}")
                    return 1
                print("STATE lines on stdout:")
                for line in run.stdout.splitlines():
                    print("  " + line)
                print("\nobjects written:")
                for key in list_keys(server, bucket, f"demo/{file_type}/"):
                    print(f"  s3://{bucket}/{key}")
                    if file_type == "parquet":
                        table = read_parquet(server, bucket, key)
                        print(f"    schema: {', '.join(f'{f.name}: {f.type}' for f in table.schema)}")
                        for row in table.slice(0, 2).to_pylist():
                            print(f"    {row}")
                    else:
                        for line in get_bytes(server, bucket, key).decode().splitlines()[:3]:
                            print(f"    {line}")
                print()
        finally:
            server.stop()
        if not tables_demo(sample, Path(tmp)):
            return 1
    print("demo finished; servers stopped")
    return 0


def tables_demo(sample: str, tmp: Path) -> bool:
    """The same input as Iceberg tables in a REST catalog (SeaweedFS's)."""
    server = SeaweedServer(tmp)
    try:
        print(f"== Iceberg: REST catalog at {server.catalog_uri}, warehouse {server.warehouse}")
        run = run_target(server.iceberg_config("demo", iceberg_commit_interval_seconds=0), sample)
        print(run.stderr.rstrip())
        if run.returncode != 0:
            print(f"target-s3 failed with exit code {run.returncode}")
            return False
        catalog = server.catalog()
        for name in catalog.list_tables("demo"):
            table = catalog.load_table(name)
            snapshot = table.current_snapshot()
            rows = table.scan().to_arrow()
            print(f"\ntable {'.'.join(name)}: {rows.num_rows} rows, {len(table.metadata.snapshots)} snapshots")
            print(f"  schema: {', '.join(f'{f.name}: {f.field_type}' for f in table.schema().fields)}")
            # A commit names the STATE it makes safe; the first of two tables' commits
            # makes none safe alone (the other table still holds earlier records).
            state = snapshot.summary.additional_properties.get("singer.state", "(none yet)")
            print(f"  last snapshot's singer.state: {state}")
            for row in rows.slice(0, 2).to_pylist():
                print(f"  {row}")
        print()
        return True
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
