"""pytest fixtures: one moto server for the session, a fresh bucket for each test, and
the other S3 implementations (s3s-fs, SeaweedFS), each started once when a test first
asks for it, for the store-facing tests that run against every one of them."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import BINARY, MotoServer, S3sFsServer, SeaweedServer, s3s_fs_binary  # noqa: E402

# Every S3 implementation the harness starts; `any_store` runs a test against each.
STORES = ["moto", "s3s-fs", "seaweedfs"]
# Those that verify SigV4 signatures (moto accepts any secret).
SIGNING_STORES = ["s3s-fs", "seaweedfs"]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    if not BINARY.exists():
        pytest.exit(f"{BINARY} is missing: run `make test`, which builds it", returncode=2)
    moto = MotoServer(tmp_path_factory.mktemp("moto"))
    yield moto
    moto.stop()


@pytest.fixture(scope="session")
def s3s(tmp_path_factory):
    if s3s_fs_binary() is None:
        pytest.skip("s3s-fs is not installed (make test installs it)")
    server = S3sFsServer(tmp_path_factory.mktemp("s3s"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


def store_named(request, name: str):
    return request.getfixturevalue({"moto": "server", "s3s-fs": "s3s", "seaweedfs": "seaweed"}[name])


@pytest.fixture(params=STORES)
def any_store(request):
    """Each S3 implementation in turn: for tests of what every store must do alike."""
    return store_named(request, request.param)


@pytest.fixture(params=SIGNING_STORES)
def signing_store(request):
    """Each S3 implementation that checks request signatures."""
    return store_named(request, request.param)


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
