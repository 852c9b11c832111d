"""Deterministic Singer input for `make bench`.

Writes, for N records (default 1,000,000):
  <out>/one-<N>.singer      one stream, a STATE every 10,000 records
  <out>/twenty-<N>.singer   the same records spread over 20 streams
  <out>/records-<N>.jsonl   the bare records, for the reference engine
Each RECORD line is about 390 bytes; 12 columns: integer id, 32-hex-digit string, name,
email, number, integer, boolean, date-time, date, array of strings, object of three
strings, mostly-null string.
"""

import json
import os
import random
import sys
from pathlib import Path

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "uid": {"type": "string"},
        "name": {"type": "string"},
        "email": {"type": ["null", "string"]},
        "score": {"type": ["null", "number"]},
        "visits": {"type": ["null", "integer"]},
        "active": {"type": ["null", "boolean"]},
        "updated_at": {"type": "string", "format": "date-time"},
        "birthday": {"type": ["null", "string"], "format": "date"},
        "tags": {"type": ["null", "array"], "items": {"type": "string"}},
        "address": {"type": ["null", "object"], "properties": {
            "street": {"type": "string"}, "city": {"type": "string"}, "country": {"type": "string"}}},
        "note": {"type": ["null", "string"]},
    },
}
FIRST = ["Ada", "Grace", "Katherine", "Dorothy", "Mary", "Annie", "Radia", "Barbara", "Frances", "Jean"]
LAST = ["Lovelace", "Hopper", "Johnson", "Vaughan", "Jackson", "Easley", "Perlman", "Liskov", "Allen", "Sammet"]
CITIES = ["Lisbon", "Nairobi", "Montreal", "Osaka", "Valparaiso", "Tromso", "Accra", "Hanoi"]
TAGS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def record(rng: random.Random, n: int) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return {
        "id": n,
        "uid": f"{rng.getrandbits(128):032x}",
        "name": f"{first} {last}, customer {n}",
        "email": f"{first.lower()}.{last.lower()}{n}@example.com",
        "score": round(rng.uniform(-1000, 1000), 4),
        "visits": rng.randrange(0, 1_000_000),
        "active": rng.random() < 0.5,
        "updated_at": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
                      f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
                      f"{rng.randrange(1_000_000):06d}+00:00",
        "birthday": f"19{rng.randrange(40, 100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "tags": rng.sample(TAGS, rng.randrange(1, 4)),
        "address": {"street": f"{rng.randrange(1, 999)} Long Street Name Avenue", "city": rng.choice(CITIES),
                    "country": rng.choice(["PT", "KE", "CA", "JP", "CL", "NO", "GH", "VN"])},
        "note": "special customer, please call before any delivery" if rng.random() < 0.05 else None,
    }


def write(out: Path, n: int) -> None:
    rng = random.Random(20241127)
    names = [out / f"one-{n}.singer", out / f"twenty-{n}.singer", out / f"records-{n}.jsonl"]
    one, twenty, bare = (open(f"{p}.partial", "w") for p in names)
    one.write(json.dumps({"type": "SCHEMA", "stream": "users", "key_properties": ["id"], "schema": SCHEMA}) + "\n")
    for s in range(20):
        twenty.write(json.dumps({"type": "SCHEMA", "stream": f"users_{s:02d}", "key_properties": ["id"],
                                 "schema": SCHEMA}) + "\n")
    for i in range(n):
        rec = json.dumps(record(rng, i), separators=(",", ":"))
        bare.write(rec + "\n")
        one.write('{"type":"RECORD","stream":"users","record":' + rec + ',"time_extracted":"2024-06-01T00:00:00Z"}\n')
        twenty.write('{"type":"RECORD","stream":"users_%02d","record":%s,"time_extracted":"2024-06-01T00:00:00Z"}\n'
                     % (i % 20, rec))
        if (i + 1) % 10_000 == 0:
            state = json.dumps({"type": "STATE", "value": {"bookmarks": {"users": {"id": i}}}}) + "\n"
            one.write(state)
            twenty.write(state)
    for f in (one, twenty, bare):
        f.close()
    for p in names:  # whole files only, so an interrupted run is never taken as done
        os.replace(f"{p}.partial", p)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    out.mkdir(parents=True, exist_ok=True)
    if not (out / f"records-{n}.jsonl").exists():
        write(out, n)
