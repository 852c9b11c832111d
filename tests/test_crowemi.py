"""crowemi/target-s3's configs (Meltano Hub's default target-s3) loaded unchanged: the
sample config of its README, with the endpoint, bucket and keys pointed at the local
server, loads the Singer SDK's fixtures; the objects are read back. Its key-layout flags
give its folders; one setting given in both spellings with different values is an error
naming both."""

import datetime
import gzip
import json
import re

import pytest

from harness import get_bytes, list_keys, read_parquet, records_by_stream, run_target
from test_sdk_fixtures import ALL, FAILING, FIXTURES


def their_sample(server, bucket) -> dict:
    """The sample config of crowemi/target-s3's README (its `true|false` and `int`
    placeholders given the values of its sample-config.json), with only the endpoint and
    bucket changed (the local server takes any keys)."""
    return {
        "format": {
            "format_type": "json",
            "format_parquet": {"validate": False},
            "format_json": {},
            "format_csv": {},
        },
        "cloud_provider": {
            "cloud_provider_type": "aws",
            "aws": {
                "aws_access_key_id": "test",
                "aws_secret_access_key": "test",
                "aws_region": "us-west-2",
                "aws_profile_name": "test-profile",
                "aws_bucket": bucket,
                "aws_endpoint_override": server.endpoint,
            },
        },
        "prefix": "path/to/output",
        "stream_name_path_override": "StreamName",
        "include_process_date": True,
        "append_date_to_prefix": False,
        "partition_name_enabled": False,
        "append_date_to_prefix_grain": "day",
        "append_date_to_filename": True,
        "append_date_to_filename_grain": "microsecond",
        "flattening_enabled": False,
        "flattening_max_depth": 1,
        "max_batch_age": 5,
        "max_batch_size": 10000,
    }


def jsonl_rows(server, bucket, key) -> list[dict]:
    text = gzip.decompress(get_bytes(server, bucket, key)).decode()
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("name", [n for n in ALL if n not in FAILING])
def test_their_readme_config_loads_the_sdk_fixtures(server, bucket, name):
    text = (FIXTURES / f"{name}.singer").read_text()
    run = run_target(their_sample(server, bucket), text)
    assert run.returncode == 0, run.stderr
    assert '"format.format_parquet.validate"' in run.stderr
    expected = records_by_stream(text)
    keys = list_keys(server, bucket)
    # Every stream into the override's folder, no date folders, the file named by the
    # batch's time to the microsecond (then our run id and sequence), gzip'd JSON lines.
    pattern = r"path/to/output/StreamName/\d{8}-\d{12}-[0-9a-f]{16}-\d{5}\.jsonl\.gz"
    assert all(re.fullmatch(pattern, k) for k in keys), keys
    rows = [row for key in keys for row in jsonl_rows(server, bucket, key)]
    assert len(rows) == sum(len(r) for r in expected.values())
    for records in expected.values():
        for record in records:
            assert any(all(row.get(k) == v for k, v in record.items() if not isinstance(v, float)) for row in rows), record
    assert all("_PROCESS_DATE" in row for row in rows)


def test_their_defaults_and_partition_names(server, bucket):
    text = (FIXTURES / "camelcase.singer").read_text()
    config = their_sample(server, bucket)
    config["format"] = {"format_type": "parquet"}
    for key in ("append_date_to_prefix", "append_date_to_filename", "append_date_to_filename_grain",
                "stream_name_path_override", "include_process_date"):
        del config[key]
    config["partition_name_enabled"] = True
    before = datetime.datetime.now(datetime.timezone.utc)
    run = run_target(config, text)
    assert run.returncode == 0, run.stderr
    [key] = list_keys(server, bucket)
    day = before.strftime("year=%Y/month=%m/day=%d")
    assert re.fullmatch(rf"path/to/output/TestCamelcase/{day}/\d{{8}}-[0-9a-f]{{16}}-\d{{5}}\.parquet", key), key
    table = read_parquet(server, bucket, key)
    assert table.num_rows == len(records_by_stream(text)["TestCamelcase"])


def test_one_setting_in_both_spellings_must_agree(server, bucket):
    config = their_sample(server, bucket)
    config["bucket"] = "another-bucket"
    run = run_target(config, "")
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert '"bucket"' in last and '"cloud_provider.aws.aws_bucket"' in last, last
    assert "another-bucket" in last and bucket in last, last


def test_other_clouds_are_refused(server, bucket):
    config = their_sample(server, bucket)
    config["cloud_provider"]["cloud_provider_type"] = "gcp"
    run = run_target(config, "")
    assert run.returncode != 0
    assert '"cloud_provider.cloud_provider_type" has value "gcp"' in run.stderr
