"""Decoding on two threads (`parallel_decoding`) stores exactly what decoding on one does:
the same objects, cut at the same records, the same rejected records with the same line
numbers, the same STATE lines, the same warnings, whatever lines the input mixes in."""

import json
import random

import pytest

from harness import base_config, get_bytes, list_keys, run_target

A_SCHEMA = {"properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                           "score": {"type": ["null", "number"]},
                           "tags": {"type": ["null", "array"], "items": {"type": "string"}},
                           "at": {"type": "string", "format": "date-time"}}}
A_WIDER = {"properties": {**A_SCHEMA["properties"], "extra": {"type": ["null", "string"]}}}
B_SCHEMA = {"properties": {"id": {"type": "integer"}, "ok": {"type": "boolean"},
                           "o": {"type": ["null", "object"], "properties": {"k": {"type": "string"}}}}}


def mixed_input(seed=11, records=60_000):
    """Several MiB of lines: two streams in runs, STATE lines, empty lines, escapes the
    plain decoder leaves to the full one, invalid records, a record without its key, a
    field not in the schema from some point on, ACTIVATE_VERSION, and a schema change
    in the middle."""
    rng = random.Random(seed)
    lines = [json.dumps({"type": "SCHEMA", "stream": "a", "key_properties": ["id"], "schema": A_SCHEMA}),
             json.dumps({"type": "SCHEMA", "stream": "b", "key_properties": ["id"], "schema": B_SCHEMA})]
    stream = "a"
    for n in range(records):
        if rng.random() < 0.002:
            stream = "b" if stream == "a" else "a"
        if n == records // 2:
            lines.append(json.dumps({"type": "SCHEMA", "stream": "a", "key_properties": ["id"],
                                     "schema": A_WIDER}))
        if stream == "a":
            record = {"id": n, "name": f"name {n} " + "x" * rng.randrange(60),
                      "score": None if n % 7 == 0 else n / 8,
                      "tags": [f"t{i}" for i in range(n % 4)], "at": "2024-05-06T07:08:09Z"}
            if n % 97 == 0:
                record["name"] = f'with "quotes" {n}'
            if n > records // 3:
                record["unknown"] = n
            if n % 1009 == 0:
                record["score"] = "not a number"
            if n % 2003 == 0:
                del record["id"]
        else:
            record = {"id": n, "ok": n % 2 == 0, "o": None if n % 5 == 0 else {"k": f"k{n}"}}
        lines.append(json.dumps({"type": "RECORD", "stream": stream, "record": record},
                                separators=(",", ":") if n % 3 else (", ", ": ")))
        if n % 1500 == 0:
            lines.append(json.dumps({"type": "STATE", "value": {"at": n}}))
        if n % 777 == 0:
            lines.append("")
        if n % 20011 == 0:
            lines.append(json.dumps({"type": "ACTIVATE_VERSION", "stream": "b", "version": n}))
    lines.append(json.dumps({"type": "STATE", "value": {"at": "end"}}))
    return "\n".join(lines) + "\n"


def stored(server, bucket, prefix):
    """Every object under `prefix`, in key order, as (folder, body): keys differ between
    runs only by time and run id."""
    out = []
    for key in list_keys(server, bucket, prefix):
        folder = key[len(prefix):].rsplit("/", 1)[0]
        out.append((folder, get_bytes(server, bucket, key)))
    return out


def warnings(stderr):
    return sorted(line.split("WARN", 1)[1] for line in stderr.splitlines() if "WARN" in line)


@pytest.mark.parametrize("file_type", ["csv", "parquet"])
def test_two_threads_store_what_one_thread_stores(server, bucket, file_type):
    text = mixed_input()
    assert len(text) > 6 * 1024 * 1024, "several blocks of input"
    runs = {}
    for parallel in (False, True):
        prefix = f"{file_type}-{parallel}"
        config = base_config(server, bucket, file_type=file_type, object_key_path=prefix,
                             invalid_records="quarantine", max_batch_rows=4_000,
                             row_group_bytes=96 * 1024, parallel_decoding=parallel)
        run = run_target(config, text, env={"RUST_LOG": "info,target_s3=debug"})
        assert run.returncode == 0, run.stderr
        runs[parallel] = (run, stored(server, bucket, prefix + "/"))
    (one, one_objects), (two, two_objects) = runs[False], runs[True]
    assert "records decoded by the decoding threads" not in one.stderr
    helped = [line for line in two.stderr.splitlines() if "records decoded by the decoding threads" in line]
    assert helped and int(helped[0].split(": ")[-1].split()[0]) > 15_000, helped
    # Which STATE lines come out between objects depends on when uploads finish; each
    # is one the tap sent, in order, and both runs end with the last.
    sent = [json.loads(line)["value"] for line in text.splitlines() if '"STATE"' in line]
    for run in (one, two):
        assert run.states[-1] == {"at": "end"}
        positions = [sent.index(state) for state in run.states]
        assert positions == sorted(positions), run.states
    assert warnings(two.stderr) == warnings(one.stderr)
    assert [folder for folder, _ in two_objects] == [folder for folder, _ in one_objects]
    assert len(one_objects) > 15 and "a/_rejected" in {folder for folder, _ in one_objects}
    for (folder, body_two), (_, body_one) in zip(two_objects, one_objects):
        if file_type == "parquet" and not folder.endswith("_rejected"):
            import io
            import pyarrow.parquet as pq
            tables = [pq.read_table(io.BytesIO(b)) for b in (body_two, body_one)]
            assert tables[0].equals(tables[1]), folder
            assert tables[0].num_rows <= 4_000
        else:
            assert body_two == body_one, folder


def test_a_bad_line_in_the_second_half_is_named_by_its_number(server, bucket):
    lines = mixed_input(records=8_000).splitlines()
    bad = len(lines) * 3 // 4
    lines[bad] = '{"type": "RECORD", "stream": "a", "record": {"id": 1,'
    config = base_config(server, bucket, parallel_decoding=True, invalid_records="skip")
    run = run_target(config, "\n".join(lines) + "\n")
    assert run.returncode != 0
    assert f"line {bad + 1}" in run.stderr and "stream \"a\"" in run.stderr, run.stderr


def test_memory_budget_acts_on_the_same_records_with_two_threads(server, bucket):
    """Eight streams in turn, with a budget so small that it completes objects every few
    hundred records: which object each record lands in depends on the order records
    were taken, and must not change."""
    rng = random.Random(5)
    schemas = [json.dumps({"type": "SCHEMA", "stream": f"s{i}", "key_properties": ["id"],
                           "schema": B_SCHEMA}) for i in range(8)]
    records = [json.dumps({"type": "RECORD", "stream": f"s{n % 8}",
                           "record": {"id": n, "ok": rng.random() < 0.5, "o": {"k": "v" * rng.randrange(200)}}})
               for n in range(40_000)]
    text = "\n".join(schemas + records) + "\n"
    stored_by = {}
    for parallel in (False, True):
        prefix = f"budget-{parallel}"
        config = base_config(server, bucket, file_type="csv", object_key_path=prefix,
                             max_buffer_bytes=6 * 1024 * 1024, part_size_bytes=5 * 1024 * 1024,
                             row_group_bytes=1024 * 1024, parallel_decoding=parallel)
        run = run_target(config, text)
        assert run.returncode == 0, run.stderr
        stored_by[parallel] = stored(server, bucket, prefix + "/")
    assert len(stored_by[False]) >= 10
    assert stored_by[True] == stored_by[False]


@pytest.mark.parametrize("order", ["interleaved", "one after another"])
def test_many_streams_under_a_budget_store_every_record_once_in_order(server, bucket, order):
    """Hundreds of streams with a budget that completes objects all the time: a stream
    whose objects are completed drops its buffers and makes them again at its next
    record (on either thread), which must change nothing: the same objects with one
    thread or two, each stream's records in input order, and a field not in the
    schema warned about once per stream however often its buffer was dropped."""
    rng = random.Random(9)
    streams, records = 400, 24_000
    per = records // streams
    lines, with_unknown = [], set()
    if order == "interleaved":
        lines += [json.dumps({"type": "SCHEMA", "stream": f"s{i:03d}", "key_properties": ["id"],
                              "schema": B_SCHEMA}) for i in range(streams)]
    for n in range(records):
        s = n % streams if order == "interleaved" else n // per
        if order != "interleaved" and n % per == 0:
            lines.append(json.dumps({"type": "SCHEMA", "stream": f"s{s:03d}", "key_properties": ["id"],
                                     "schema": B_SCHEMA}))
        record = {"id": n, "ok": rng.random() < 0.5, "o": {"k": "v" * rng.randrange(1200)}}
        if s % 10 == 0 and n >= records // 2:
            record["unknown"] = n
            with_unknown.add(s)
        lines.append(json.dumps({"type": "RECORD", "stream": f"s{s:03d}", "record": record}))
        if (n + 1) % 2000 == 0:
            lines.append(json.dumps({"type": "STATE", "value": {"at": n + 1}}))
    text = "\n".join(lines) + "\n"
    stored_by, warned = {}, {}
    for parallel in (False, True):
        prefix = f"many-{parallel}"
        config = base_config(server, bucket, file_type="csv", object_key_path=prefix,
                             max_buffer_bytes=10 * 1024 * 1024, parallel_decoding=parallel)
        run = run_target(config, text)
        assert run.returncode == 0, run.stderr
        assert run.states[-1] == {"at": records}
        stored_by[parallel] = stored(server, bucket, prefix + "/")
        warned[parallel] = warnings(run.stderr)
    assert stored_by[True] == stored_by[False]
    assert warned[True] == warned[False]
    unknown = [w for w in warned[False] if 'field "unknown" is not in the schema' in w]
    assert len(unknown) == len(with_unknown), unknown
    ids_by_stream = {}
    for folder, body in stored_by[False]:
        rows = body.decode().splitlines()[1:]
        ids_by_stream.setdefault(folder, []).extend(int(row.split(",")[0]) for row in rows)
    assert len(ids_by_stream) == streams
    if order == "interleaved":
        assert len(stored_by[False]) > streams, "the budget must complete objects before the end"
    for folder, ids in ids_by_stream.items():
        s = int(folder.rsplit("s", 1)[1])
        expected = list(range(s, records, streams)) if order == "interleaved" else list(range(s * per, (s + 1) * per))
        assert ids == expected, folder
