"""Integrity end to end: conditional writes (`If-None-Match: *`, never replacing an
object) and full-object checksums the store verifies, seen on the wire at the fault
proxy (moto verifies neither) and against SeaweedFS, which verifies both; and what
`auto` chooses on each server the harness starts."""

import json
import re

import pytest

from conftest import store_named
from fault_proxy import FaultProxy, Rule
from harness import base_config, get_bytes, list_keys, run_target
from test_pipeline import singer

PART = 5 * 1024 * 1024
CHOSEN = re.compile(r"store: conditional writes (on|off), checksums (\w+)")
HEADER = {"crc64nvme": "x-amz-checksum-crc64nvme", "crc32c": "x-amz-checksum-crc32c", "md5": "content-md5"}
PUT = r"^PUT .*x-id=PutObject"
PART_PUT = r"^PUT .*partNumber="
COMPLETE = r"^POST .*\?uploadId="


def proxied(server):
    return FaultProxy(server.port)


def chosen(run) -> tuple[str, str]:
    found = CHOSEN.search(run.stderr)
    assert found, run.stderr
    return found.group(1), found.group(2)


def with_rejects(n: int) -> str:
    """`n` records with one that does not fit its schema (quarantined), and a state."""
    lines = singer(n, state_every=n).splitlines()
    lines.insert(2, json.dumps({"type": "RECORD", "stream": "s0", "record": {"id": "not a number"}}))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name, expected", [
    ("moto", ("on", "none")),
    ("s3s-fs", ("on", "crc64nvme")),
    ("seaweedfs", ("on", "crc64nvme")),
])
def test_auto_reports_what_it_learnt_from_each_store(name, expected, request):
    server = store_named(request, name)
    bucket = server.new_bucket()
    run = run_target(base_config(server, bucket, file_type="csv", part_size_bytes=PART), singer(30_000))
    assert run.returncode == 0, run.stderr
    assert chosen(run) == expected
    # The probe object is gone again; the data is there.
    assert not [k for k in list_keys(server, bucket) if "target-s3-probe" in k]
    assert run.states[-1] == {"at": 30_000}


@pytest.mark.parametrize("algorithm", ["crc64nvme", "crc32c", "md5"])
def test_every_upload_is_conditional_and_carries_a_plain_checksum_header(server, algorithm):
    bucket = server.new_bucket()
    proxy = proxied(server)
    try:
        config = base_config(server, bucket, aws_endpoint=proxy.endpoint, file_type="csv", part_size_bytes=PART,
                             conditional_writes="on", checksum_algorithm=algorithm, manifest=True,
                             validate_records=True, invalid_records="quarantine")
        run = run_target(config, with_rejects(30_000))
        assert run.returncode == 0, run.stderr
        assert chosen(run) == ("on", algorithm)
        puts, parts, completes = (proxy.headers_of(p) for p in (PUT, PART_PUT, COMPLETE))
    finally:
        proxy.stop()
    keys = list_keys(server, bucket)
    assert any("/_rejected/" in k for k in keys) and any("/_manifests/" in k for k in keys), keys
    # Data (one multipart object), rejected records and manifest (PutObject each).
    assert len(puts) >= 2 and len(parts) >= 2 and len(completes) == 1
    for headers in puts + completes:
        assert headers.get("if-none-match") == "*", headers
    for headers in puts + parts:
        assert HEADER[algorithm] in headers, headers
    for headers in puts + parts + completes:
        assert "aws-chunked" not in headers.get("content-encoding", ""), headers
        assert "x-amz-trailer" not in headers and "x-amz-decoded-content-length" not in headers, headers
    if algorithm != "md5":
        # The whole object's checksum, over all parts, at completion.
        assert HEADER[algorithm] in completes[0] and completes[0].get("x-amz-checksum-type") == "FULL_OBJECT"
        # The manifest records the checksum the data object was sent with.
        [manifest] = [k for k in keys if "/_manifests/" in k]
        [entry] = json.loads(get_bytes(server, bucket, manifest))["entries"]
        assert entry["meta"]["checksum"] == {"algorithm": algorithm, "value": completes[0][HEADER[algorithm]]}


def test_off_sends_neither(server, bucket):
    proxy = proxied(server)
    try:
        config = base_config(server, bucket, aws_endpoint=proxy.endpoint, conditional_writes="off",
                             checksum_algorithm="none")
        run = run_target(config, singer(100))
        assert run.returncode == 0, run.stderr
        [headers] = proxy.headers_of(PUT)
    finally:
        proxy.stop()
    assert "if-none-match" not in headers and not any(h.startswith("x-amz-checksum") for h in headers)


def test_precondition_failed_ends_the_run_naming_the_key_without_retry(server, bucket):
    proxy = proxied(server)
    proxy.rules = [Rule(r"^PUT .*/exports/run/s0/.*x-id=PutObject", "412", times=1)]
    try:
        config = base_config(server, bucket, aws_endpoint=proxy.endpoint, conditional_writes="on",
                             checksum_algorithm="crc32c",
                             max_batch_rows=1_000, max_concurrent_uploads=1)
        run = run_target(config, singer(3_000, state_every=500))
        seen = list(proxy.seen)
    finally:
        proxy.stop()
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    found = re.search(rf"PutObject s3://{bucket}/(\S+) failed", last)
    assert found and "PreconditionFailed" in last and "never replaces an object" in last, last
    key = found.group(1)
    # The refused key was sent once, never again; no STATE covers its records.
    assert sum(1 for line in seen if re.search(PUT, line) and key in line) == 1
    assert run.states == []
    assert key not in list_keys(server, bucket)


def data_upload(request_line: str) -> str:
    """The pattern of the first data object's upload (PutObject or completion)."""
    return request_line.replace("^PUT ", "^PUT .*/exports/run/s0/").replace("^POST ", "^POST .*/exports/run/s0/")


def data_run(seaweed, bucket, proxy, request_line):
    config = base_config(seaweed, bucket, aws_endpoint=proxy.endpoint, file_type="csv", part_size_bytes=PART,
                         max_batch_rows=1_000 if request_line == PUT else 1_000_000)
    return run_target(config, singer(3_000 if request_line == PUT else 30_000, state_every=500))


@pytest.mark.parametrize("request_line", [PUT, COMPLETE])
def test_another_writers_object_ends_the_run_with_the_stores_own_412(seaweed, request_line):
    """SeaweedFS's own answer: just before one data upload (a PutObject, or a multipart
    completion) reaches it, another writer stores other bytes at that key."""
    bucket = seaweed.new_bucket()
    taken = []

    def other_writer(path):
        key = path.split("?")[0].split(f"/{bucket}/", 1)[1]
        seaweed.client().put_object(Bucket=bucket, Key=key, Body=b"another writer")
        taken.append(key)

    proxy = proxied(seaweed)
    proxy.rules = [Rule(data_upload(request_line), "before", times=1, before=other_writer)]
    try:
        run = data_run(seaweed, bucket, proxy, request_line)
    finally:
        proxy.stop()
    assert run.returncode == 1, run.stderr
    assert chosen(run) == ("on", "crc64nvme")
    last = run.stderr.strip().splitlines()[-1]
    assert "PreconditionFailed" in last and "never replaces an object" in last, last
    assert f"s3://{bucket}/{taken[0]} failed" in last, last
    assert run.states == []
    assert get_bytes(seaweed, bucket, taken[0]) == b"another writer"


@pytest.mark.parametrize("request_line", [PUT, COMPLETE])
def test_an_earlier_attempt_that_landed_is_not_taken_for_another_writer(seaweed, request_line):
    """A retry after a lost answer finds its own object at the key (412): recognised by
    its checksum or ETag, the write counts as done."""
    bucket = seaweed.new_bucket()
    proxy = proxied(seaweed)
    proxy.rules = [Rule(data_upload(request_line), "duplicate", times=1)]
    try:
        run = data_run(seaweed, bucket, proxy, request_line)
    finally:
        proxy.stop()
    assert proxy.rules[0].hits == 1
    assert run.returncode == 0, run.stderr
    assert "an earlier attempt's answer was lost" in run.stderr
    assert run.states[-1] == {"at": 3_000 if request_line == PUT else 30_000}


@pytest.mark.parametrize("algorithm", ["crc64nvme", "crc32c", "md5"])
def test_a_byte_flipped_in_transit_is_caught_by_the_store_and_sent_again(seaweed, algorithm):
    text = singer(30_000)
    stored = []
    for flip in (False, True):
        bucket = seaweed.new_bucket()
        proxy = proxied(seaweed)
        proxy.rules = [Rule(r"^PUT .*partNumber=2&", "flip", times=1)] if flip else []
        try:
            config = base_config(seaweed, bucket, aws_endpoint=proxy.endpoint, file_type="csv",
                                 part_size_bytes=PART, checksum_algorithm=algorithm)
            run = run_target(config, text)
            part_two = [line for line in proxy.seen if re.search(r"^PUT .*partNumber=2&", line)]
        finally:
            proxy.stop()
        assert run.returncode == 0, run.stderr
        assert chosen(run) == ("on", algorithm)
        if flip:
            assert proxy.rules[0].hits == 1 and len(part_two) == 2, part_two
            assert "changed in transit" in run.stderr, run.stderr
        [key] = list_keys(seaweed, bucket)
        stored.append(get_bytes(seaweed, bucket, key))
    assert stored[0] == stored[1]


def test_without_a_checksum_the_flipped_byte_is_stored(seaweed):
    """Why checksums matter: the same corruption with `none` goes unnoticed (SeaweedFS
    does not check the signed payload hash)."""
    bucket = seaweed.new_bucket()
    proxy = proxied(seaweed)
    proxy.rules = [Rule(r"^PUT .*partNumber=2&", "flip", times=1)]
    try:
        config = base_config(seaweed, bucket, aws_endpoint=proxy.endpoint, file_type="csv",
                             part_size_bytes=PART, checksum_algorithm="none")
        run = run_target(config, singer(30_000))
    finally:
        proxy.stop()
    assert run.returncode == 0, run.stderr
    assert proxy.rules[0].hits == 1 and "changed in transit" not in run.stderr
    [key] = list_keys(seaweed, bucket)
    clean = seaweed.new_bucket()
    assert run_target(base_config(seaweed, clean, file_type="csv", part_size_bytes=PART,
                                  checksum_algorithm="none"), singer(30_000)).returncode == 0
    [clean_key] = list_keys(seaweed, clean)
    assert get_bytes(seaweed, bucket, key) != get_bytes(seaweed, clean, clean_key)



def test_iceberg_data_files_are_conditional_with_a_checksum(seaweed):
    """Data files of an Iceberg table (no bucket of its own, so nothing to probe: the
    settings are explicit) get both, through the same uploads."""
    from test_iceberg import many, namespace
    from test_iceberg import singer as table_singer

    proxy = proxied(seaweed)
    try:
        config = seaweed.iceberg_config(namespace(), aws_endpoint=proxy.endpoint, conditional_writes="on",
                                        checksum_algorithm="crc32c")
        run = run_target(config, table_singer(many(50)))
        data = [h for line, h in proxy.headers if re.search(r"^PUT .*\.parquet", line)]
    finally:
        proxy.stop()
    assert run.returncode == 0, run.stderr
    assert data, proxy.seen
    for headers in data:
        assert headers.get("if-none-match") == "*" and "x-amz-checksum-crc32c" in headers, headers


def test_overwrite_deletes_with_a_content_md5_on_every_store(any_store):
    """DeleteObjects carries `Content-MD5` besides the SDK's CRC: a store that demands
    it (the proxy refuses any DeleteObjects without the body's right MD5, as stores built
    on older S3 code do) takes the deletions, and every real store still does."""
    bucket = any_store.new_bucket()
    client = any_store.client()
    old = [f"exports/run/s0/old/{n}.csv" for n in range(3)]
    for key in old:
        client.put_object(Bucket=bucket, Key=key, Body=b"id\r\n1\r\n")
    proxy = proxied(any_store)
    proxy.rules = [Rule(r"^POST .*\?delete", "needs-md5", times=None)]
    try:
        config = base_config(any_store, bucket, aws_endpoint=proxy.endpoint, file_type="csv", load_method="overwrite")
        run = run_target(config, singer(10))
        deletes = proxy.headers_of(r"^POST .*\?delete")
    finally:
        proxy.stop()
    assert run.returncode == 0, run.stderr
    assert len(deletes) == 1 and "content-md5" in deletes[0], deletes
    assert proxy.rules[0].hits == 1
    keys = list_keys(any_store, bucket)
    assert not set(old) & set(keys) and len(keys) == 1, keys
