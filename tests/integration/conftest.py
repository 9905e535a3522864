"""Local nodes for the tests of the infrastructure and of each plugin: a SQLite store of the
test's own, a local provider rooted in a folder its nodes' users can traverse (every instance
deleted afterwards), a cluster key pair and an SSH pool holding it; and the real one-replica
Swift (with s3api) that EDP's object storage tests use (``tools/swift``)."""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sahara_es.edp.storage import StoragePolicy
from sahara_es.infra import LocalProvider, SSHPool, generate_keypair
from sahara_es.store import Store, open_store
from tests import regions
from tests.nodes import node_root, remove_node_root


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path}/s.db", upgrade=True)
    yield store
    store.close()


@pytest.fixture
def nodes_root() -> Iterator[Path]:
    """A root for local nodes that their users can traverse (not pytest's 0700 tmp_path)."""
    folder = node_root()
    yield folder
    remove_node_root(folder)


@pytest.fixture
def provider(sqlite_store: Store, nodes_root: Path) -> Iterator[LocalProvider]:
    provider = LocalProvider(sqlite_store, root=nodes_root / "infra", stop_grace=2.0)
    yield provider
    for instance in provider.list_instances():
        provider.delete_instance(instance.name)


@pytest.fixture(scope="module")
def keypair() -> tuple[str, str]:
    return generate_keypair("test-cluster")


@pytest.fixture
def pool(keypair: tuple[str, str]) -> Iterator[SSHPool]:
    with SSHPool(keypair[0], connect_attempts=3) as pool:
        yield pool


# -- object storage: a real Swift with s3api ------------------------------------------------

CHECKOUT = Path(__file__).resolve().parents[2]
SWIFT = CHECKOUT / "tools" / "swift"


@dataclass(frozen=True)
class SwiftStorage:
    """The test Swift: swift:// through ``auth_url`` (tempauth v1.0), s3:// and s3a://
    through ``s3_endpoint`` (s3api on the same proxy); ``user``/``key`` are both the Swift
    credentials and the S3 access key/secret; ``policy`` allows its loopback host."""

    auth_url: str
    s3_endpoint: str
    user: str
    key: str
    policy: StoragePolicy

    @property
    def swift_credentials(self) -> dict[str, str]:
        return {"user": self.user, "password": self.key}

    @property
    def s3_credentials(self) -> dict[str, str]:
        return {"accesskey": self.user, "secretkey": self.key, "endpoint": self.s3_endpoint,
                "bucket_in_path": "true", "ssl": "false"}


def swift_env() -> dict[str, str]:
    """The settings ``tools/swift env`` prints (``SAHARA_ES_SWIFT_AUTH_URL``...)."""
    out = subprocess.run([str(SWIFT), "env"], check=True, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        found[name] = value
    return found


@pytest.fixture(scope="session")
def swift_storage() -> Iterator[SwiftStorage]:
    """The test Swift, started by ``tools/swift start`` unless it already runs (then left
    running); started here, it is stopped at the session's end (not under xdist, whose
    workers share it: there it is left running)."""
    lock_path = CHECKOUT / ".cache" / "swift-start.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one xdist worker starts it, the others wait
        running = subprocess.run([str(SWIFT), "status"], capture_output=True).returncode == 0
        if not running:
            started = subprocess.run([str(SWIFT), "start"], capture_output=True, text=True)
            if started.returncode != 0:
                pytest.fail(f"tools/swift start failed:\n{started.stdout}{started.stderr}")
    env = swift_env()
    s3_endpoint = env["SAHARA_ES_S3_ENDPOINT"]
    yield SwiftStorage(
        auth_url=env["SAHARA_ES_SWIFT_AUTH_URL"], s3_endpoint=s3_endpoint,
        user=env["SAHARA_ES_SWIFT_USER"], key=env["SAHARA_ES_SWIFT_KEY"],
        policy=StoragePolicy(
            swift_auth_url=env["SAHARA_ES_SWIFT_AUTH_URL"], s3_endpoint=s3_endpoint,
            private_hosts=frozenset(env["SAHARA_ES_STORAGE_PRIVATE_HOSTS"].split(","))))
    if not running and "PYTEST_XDIST_WORKER" not in os.environ:
        subprocess.run([str(SWIFT), "stop"], capture_output=True)


# -- identity: a real Keystone ----------------------------------------------------------------

KEYSTONE = CHECKOUT / "tools" / "keystone"


@dataclass(frozen=True)
class RealKeystone:
    """The test Keystone (``tools/keystone``): ``auth_url`` (v3) and its bootstrap admin's
    password (user and project ``admin``, domain ``default``)."""

    auth_url: str
    admin_password: str


@pytest.fixture(scope="session")
def real_keystone() -> Iterator[RealKeystone]:
    """The test Keystone, started by ``tools/keystone start`` unless it already runs (then
    left running); started here, it is stopped at the session's end (not under xdist, whose
    workers share it)."""
    lock_path = CHECKOUT / ".cache" / "keystone-start.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one xdist worker starts it, the others wait
        running = subprocess.run([str(KEYSTONE), "status"], capture_output=True).returncode == 0
        if not running:
            started = subprocess.run([str(KEYSTONE), "start"], capture_output=True, text=True)
            if started.returncode != 0:
                pytest.fail(f"tools/keystone start failed:\n{started.stdout}{started.stderr}")
    out = subprocess.run([str(KEYSTONE), "env"], check=True, capture_output=True,
                         text=True).stdout
    env = dict(line.removeprefix("export ").partition("=")[::2] for line in out.splitlines())
    yield RealKeystone(auth_url=env["OS_AUTH_URL"], admin_password=env["OS_PASSWORD"])
    if not running and "PYTEST_XDIST_WORKER" not in os.environ:
        subprocess.run([str(KEYSTONE), "stop"], capture_output=True)


@pytest.fixture(scope="session")
def three_regions() -> Iterator[None]:
    """The three-datacenter Cassandra (tools/cassandra-regions), started once if it is not
    running, with no delay added between its datacenters."""
    with regions.regions_running():
        regions.set_delay(0)
        yield


@pytest.fixture(scope="session")
def regions_keyspace(three_regions: None) -> Iterator[str]:
    """The session's keyspace on the three datacenters, with the service's schema: made once
    (some 40 s here, a schema change at a time agreed by three nodes), dropped at the end."""
    name = regions.new_keyspace_name()
    open_store(regions.regions_url(name, "dc1"), upgrade=True).close()
    yield name
    regions.drop_keyspace(name)


@pytest.fixture
def keyspace(regions_keyspace: str) -> str:
    """The session's keyspace on the three datacenters, emptied for this test: it begins
    with no event, lease, claim or projection of another test's."""
    regions.empty_keyspace(regions_keyspace)
    return regions_keyspace


@pytest.fixture
def stores(keyspace: str) -> Iterator[dict[str, Store]]:
    """A store per region, each connected with its own datacenter as the local one."""
    opened = {"dc1": open_store(regions.regions_url(keyspace, "dc1"), upgrade=True)}
    for region in ("dc2", "dc3"):
        opened[region] = open_store(regions.regions_url(keyspace, region))
    yield opened
    for store in opened.values():
        store.close()
