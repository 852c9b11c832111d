"""pytest fixtures: one moto server for the session, a fresh bucket for each test."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import BINARY, MotoServer  # noqa: E402


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    if not BINARY.exists():
        pytest.exit(f"{BINARY} is missing: run `make test`, which builds it", returncode=2)
    moto = MotoServer(tmp_path_factory.mktemp("moto"))
    yield moto
    moto.stop()


@pytest.fixture
def own_server(tmp_path):
    """A moto server for one test, for tests that read moto's whole state dump (which
    other tests' objects can break)."""
    moto = MotoServer(tmp_path)
    yield moto
    moto.stop()


@pytest.fixture
def bucket(server):
    return server.new_bucket()
