"""Deterministic Singer input of other shapes than one narrow stream, for `make bench`'s
"shapes" table: many streams (interleaved, or one after another as a database tap sends
tables), wide records and huge records.

Usage: python bench/shapes.py OUT_FOLDER [SHAPE ...]   (no shape: all of them)
Each input is written once, as <OUT_FOLDER>/shape-<name>.singer, and kept.
"""

import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import SCHEMA, record  # noqa: E402

RECORDS = 200_000


def narrow_streams(out, streams: int, interleaved: bool) -> None:
    """RECORDS narrow records over `streams` streams: round-robin, or each stream's
    records together after its SCHEMA; a STATE every 10,000 records."""
    rng = random.Random(20241127)
    per = RECORDS // streams
    schema = lambda s: json.dumps({"type": "SCHEMA", "stream": f"t{s:05d}", "key_properties": ["id"],
                                   "schema": SCHEMA}) + "\n"
    if interleaved:
        out.writelines(schema(s) for s in range(streams))
    for i in range(RECORDS):
        s = i % streams if interleaved else i // per
        if not interleaved and i % per == 0:
            out.write(schema(s))
        rec = json.dumps(record(rng, i), separators=(",", ":"))
        out.write('{"type":"RECORD","stream":"t%05d","record":%s}\n' % (s, rec))
        if (i + 1) % 10_000 == 0:
            out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"i": i}}}) + "\n")


def wide(out, records: int = 20_000, columns: int = 1_000) -> None:
    """`records` records of `columns` columns: integers, numbers, strings, booleans
    and date-times in turn."""
    rng = random.Random(7)
    kinds = [{"type": ["null", "integer"]}, {"type": ["null", "number"]}, {"type": ["null", "string"]},
             {"type": ["null", "boolean"]}, {"type": ["null", "string"], "format": "date-time"}]
    props = {f"c{c:04d}": kinds[c % 5] for c in range(columns)}
    out.write(json.dumps({"type": "SCHEMA", "stream": "wide", "key_properties": [],
                          "schema": {"type": "object", "properties": props}}) + "\n")
    values = [lambda: rng.randrange(10**9), lambda: round(rng.uniform(-1e4, 1e4), 3),
              lambda: f"value {rng.getrandbits(40):x}", lambda: rng.random() < 0.5,
              lambda: f"2024-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T12:{rng.randrange(10, 60)}:00+00:00"]
    for i in range(records):
        rec = {name: values[c % 5]() for c, name in enumerate(props)}
        out.write('{"type":"RECORD","stream":"wide","record":%s}\n' % json.dumps(rec, separators=(",", ":")))
        if (i + 1) % 1_000 == 0:
            out.write(json.dumps({"type": "STATE", "value": {"i": i}}) + "\n")


def huge(out, kind: str, mib: int = 50) -> None:
    """One record of about `mib` MiB: one string, or an array of strings (1M items for
    50 MiB), between two small ones."""
    props = {"id": {"type": "integer"},
             "big": {"type": "string"} if kind == "string" else {"type": "array", "items": {"type": "string"}}}
    out.write(json.dumps({"type": "SCHEMA", "stream": "huge", "key_properties": ["id"],
                          "schema": {"type": "object", "properties": props}}) + "\n")
    size = mib << 20
    for i in range(3):
        if i != 1:
            big = "small" if kind == "string" else ["a", "b", "c"]
        elif kind == "string":
            big = "x" * size
        else:
            big = [f"item {n:043d}" for n in range(size // 51)]  # 1M items of 48 characters
        out.write(json.dumps({"type": "RECORD", "stream": "huge", "record": {"id": i, "big": big}},
                             separators=(",", ":")) + "\n")
    out.write(json.dumps({"type": "STATE", "value": {"done": True}}) + "\n")


SHAPES = {
    "streams-1": lambda out: narrow_streams(out, 1, True),
    "streams-200-interleaved": lambda out: narrow_streams(out, 200, True),
    "streams-1000-interleaved": lambda out: narrow_streams(out, 1_000, True),
    "streams-5000-interleaved": lambda out: narrow_streams(out, 5_000, True),
    "streams-1000-sequential": lambda out: narrow_streams(out, 1_000, False),
    "streams-5000-sequential": lambda out: narrow_streams(out, 5_000, False),
    "streams-20000-sequential": lambda out: narrow_streams(out, 20_000, False),
    "wide-1000-columns": wide,
    "huge-string": lambda out: huge(out, "string"),
    "huge-array": lambda out: huge(out, "array"),
}


def path_of(folder: Path, shape: str) -> Path:
    """The input of `shape`, written first when it is not there yet."""
    path = folder / f"shape-{shape}.singer"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.partial", "w") as out:
            SHAPES[shape](out)
        os.replace(f"{path}.partial", path)  # whole files only
    return path


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    for shape in sys.argv[2:] or SHAPES:
        print(path_of(folder, shape))
