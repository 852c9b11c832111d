# target-s3 — every set-up step the demo, tests and benchmark need lives here.
# A fresh machine needs only Rust, Python 3.11 and pip.

VENV     := .venv
PY       := $(VENV)/bin/python
BIN      := target/release/target-s3
# The whole-program build (fat LTO, one codegen unit): `make bench` and published wheels.
DIST_BIN := target/dist/target-s3
STAMP    := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed

.PHONY: all build dist wheel venv s3s-fs postgres java demo test unit integration lint bench bench-shapes clean

all: build

build: $(BIN)

$(BIN): Cargo.toml Cargo.lock $(shell find src -name '*.rs')
	cargo build --release --locked

dist: $(DIST_BIN)

$(DIST_BIN): Cargo.toml Cargo.lock $(shell find src -name '*.rs')
	cargo build --profile dist --locked

# A wheel for PyPI with the whole-program build, into target/wheels (pip fetches maturin).
wheel:
	MATURIN_PEP517_ARGS="--profile dist --locked" python3 -m pip wheel --no-deps -w target/wheels .

# The test venv: moto (S3 + STS server), pyarrow, DuckDB, polars, DataFusion, pyspark, pytest,
# singer-sdk (fixtures).
$(STAMP): tests/requirements.txt tests/requirements-demo.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r tests/requirements.txt
	touch $(STAMP)

venv: $(STAMP)

# The demo needs only the S3 server and a Parquet reader: a first `make demo` does not
# wait for the test tools (Spark, query engines).
$(DEMO_STAMP): tests/requirements-demo.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r tests/requirements-demo.txt
	touch $(DEMO_STAMP)

# Meltano in a venv of its own (its pins differ from the test venv's), for the
# `meltano run` integration test.
MELTANO := .venv-meltano/bin/meltano

$(MELTANO):
	test -x .venv-meltano/bin/python || python3 -m venv .venv-meltano
	.venv-meltano/bin/pip install --quiet "meltano==4.4.1"

# Mage's runner code (mage-ai, without its heavy dependencies: only its log parsing
# and helpers are run) in a venv of its own, for the Mage integration test.
MAGE := .venv-mage/.installed

$(MAGE):
	test -x .venv-mage/bin/python || python3 -m venv .venv-mage
	.venv-mage/bin/pip install --quiet --no-deps "mage-ai==0.9.80" "inflection==0.5.1"
	touch $(MAGE)

# DuckDB's iceberg extension, with the DuckDB it was built for, in a venv of its own
# (tests/requirements-duckdb-iceberg.txt says why), for the DuckDB Iceberg reader tests.
DUCKDB_ICEBERG := .venv-duckdb-iceberg/.installed

$(DUCKDB_ICEBERG): tests/requirements-duckdb-iceberg.txt
	test -x .venv-duckdb-iceberg/bin/python || python3 -m venv .venv-duckdb-iceberg
	.venv-duckdb-iceberg/bin/pip install --quiet -r tests/requirements-duckdb-iceberg.txt
	touch $@

# s3s-fs: an S3 server that verifies SigV4 signatures (tests of credentials; the
# benchmark's server). Installed once into cargo's bin folder.
S3S_FS := $(shell command -v s3s-fs 2>/dev/null || echo $${CARGO_HOME:-$$HOME/.cargo}/bin/s3s-fs)

$(S3S_FS):
	cargo install s3s-fs@0.14.1 --locked --features binary

s3s-fs: $(S3S_FS)

# Starts a local S3-compatible server, loads fixtures/sample.singer through the
# release binary, prints the keys written and the rows read back, stops the server.
demo: $(BIN) $(DEMO_STAMP)
	$(PY) scripts/demo.py

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

unit:
	cargo test --locked

# MeltanoLabs' tap-postgres in a venv of its own (with pyarrow, which the Singer SDK's
# Parquet batch files need), and Debian's PostgreSQL server (as root, only when
# missing), for the PostgreSQL integration tests.
TAP_POSTGRES := .venv-tap-postgres/.installed

$(TAP_POSTGRES):
	test -x .venv-tap-postgres/bin/python || python3 -m venv .venv-tap-postgres
	.venv-tap-postgres/bin/pip install --quiet "meltanolabs-tap-postgres==0.10.0" "pyarrow>=15"
	touch $@

postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else echo "PostgreSQL is missing and this is not root: its test will be skipped"; fi; \
	fi

# Java for Spark's reader test (pyspark starts a JVM): Debian's OpenJDK 17, as root, only
# when no `java` is on the PATH. Slim Debian images lack the man folder its install needs.
java:
	@if ! command -v java >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    mkdir -p /usr/share/man/man1 && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; \
	  else echo "java is missing and this is not root: the Spark tests will be skipped"; fi; \
	fi

integration: $(BIN) $(STAMP) $(S3S_FS) $(MELTANO) $(MAGE) $(DUCKDB_ICEBERG) $(TAP_POSTGRES) postgres java
	$(PY) -m pytest -q tests

test: lint unit integration

# Records/s and peak memory on a generated 1M-record stream, beside DuckDB's
# JSON-to-Parquet COPY of the same records; figures in bench/out/results.json. Measures
# the release build users get; `make bench BENCH_BIN=target/dist/target-s3` the
# whole-program one (a few percent faster at most, README, Performance).
BENCH_BIN := $(BIN)

bench: $(BENCH_BIN) $(STAMP) $(S3S_FS)
	TARGET_S3_BIN=$(BENCH_BIN) $(PY) bench/run.py

# The shapes table alone (many streams, wide and huge records, into a local folder).
bench-shapes: $(BENCH_BIN) $(STAMP)
	TARGET_S3_BIN=$(BENCH_BIN) $(PY) bench/run.py --shapes-only

clean:
	cargo clean
	rm -rf $(VENV) .venv-meltano .venv-mage .venv-tap-postgres .venv-duckdb-iceberg
