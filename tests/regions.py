"""The three-datacenter Cassandra of ``tools/cassandra-regions`` for tests and benchmarks: its
addresses, store URLs with a region of one's own, the one-way delay between the regions, and
killing and restarting one region's node.

One cluster serves a whole test session (started here unless it already runs), and one
keyspace replicated to all three datacenters, made once and emptied for each test
(``empty_keyspace``): making one takes some 40 s here, emptying it a second or two.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.factories import CASSANDRA_TEST_KEYSPACE, cassandra_cluster

CHECKOUT = Path(__file__).resolve().parent.parent
TOOL = CHECKOUT / "tools" / "cassandra-regions"
DATACENTERS = ("dc1", "dc2", "dc3")
HOSTS = {"dc1": "127.0.0.11", "dc2": "127.0.0.12", "dc3": "127.0.0.13"}
PORT = 9043
REPLICATION = "dc1:1,dc2:1,dc3:1"


def tool(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(TOOL), *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"tools/cassandra-regions {' '.join(args)} failed:\n"
                           f"{done.stdout}{done.stderr}")
    return done


def running() -> bool:
    return tool("status", check=False).returncode == 0


@contextmanager
def regions_running() -> Iterator[bool]:
    """The three datacenters up (started unless they were: yields whether it started them,
    and then stops them again, unless under xdist, whose workers share them)."""
    lock_path = CHECKOUT / ".cache" / "cassandra-regions-start.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = not running()
        if started:
            tool("start")
    try:
        yield started
    finally:
        if started and "PYTEST_XDIST_WORKER" not in os.environ:
            tool("stop", check=False)


def set_delay(milliseconds: float) -> None:
    """The one-way delay between every two datacenters, applied to open connections."""
    tool("delay", f"{milliseconds:g}")
    time.sleep(0.3)  # the proxy reads the file again every 100 ms


def regions_url(keyspace: str, region: str, **params: str) -> str:
    """A store URL for a process of ``region``: every node as a contact point, its own
    datacenter as the local one, the keyspace replicated once to each datacenter."""
    query = "&".join(f"{k}={v}" for k, v in {
        "local_dc": region, "replication": REPLICATION, "partition_size": "100",
        **params}.items())
    return f"cassandra://{','.join(HOSTS.values())}:{PORT}/{keyspace}?{query}"


def new_keyspace_name() -> str:
    return f"{CASSANDRA_TEST_KEYSPACE}_r{uuid.uuid4().hex[:8]}"[:48]


def drop_keyspace(keyspace: str) -> None:
    cluster = cassandra_cluster(HOSTS["dc1"], port=PORT)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


def empty_keyspace(keyspace: str) -> None:
    """Truncate every table of ``keyspace`` but its migrations, with every region's node up
    (a truncate needs all replicas; a test that failed may have left one killed). A hint a
    node still holds from before is not replayed into the emptied tables: Cassandra drops a
    hint's writes to a table truncated after the hint was made."""
    for region in HOSTS:
        if not node_up(region):
            restart(region)
    cluster = cassandra_cluster(HOSTS["dc1"], port=PORT)
    try:
        session = cluster.connect()
        tables = [row.table_name for row in session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
            (keyspace,))]
        for table in tables:
            if table != "schema_migrations":
                session.execute(f"TRUNCATE {keyspace}.{table}", timeout=60)
    finally:
        cluster.shutdown()


def kill(region: str) -> None:
    """``kill -9`` of the region's node: the datacenter is gone at once."""
    tool("kill", region)


def restart(region: str) -> None:
    tool("restart", region)


def node_up(region: str) -> bool:
    import socket

    try:
        with socket.create_connection((HOSTS[region], PORT), timeout=1):
            return True
    except OSError:
        return False
