"""A hostile tenant on real local nodes: whatever it runs on its node, it reaches nothing of
the service's and nothing of another cluster's (``doc/security.rst``).

Two clusters, A (two nodes) and B (one node), each with its own key. Every attempt is made
from a shell on a node, logged in as the node's user with its cluster's key, as the plugins
log in; every attempt must fail, and the test asserts how.
"""

from __future__ import annotations

import os
import pwd
import shlex
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sahara_es.cli.context import private_folder
from sahara_es.events import NewEvent
from sahara_es.infra import Instance, InstanceSpec, LocalProvider, Node, SSHPool, generate_keypair
from sahara_es.infra.base import InfraError
from sahara_es.infra.local import USER_PREFIX, check_unprivileged
from sahara_es.infra.ssh import CommandResult
from sahara_es.store import open_store
from tests.factories import CASSANDRA_CREDENTIALS, CASSANDRA_HOST, cassandra_up
from tests.nodes import node_root, remove_node_root

pytestmark = pytest.mark.xdist_group("local-infra")

DENIED = ("Permission denied", "Operation not permitted")


@dataclass
class Tenant:
    pool: SSHPool
    nodes: list[Instance]

    def run(self, command: str, node: int = 0) -> CommandResult:
        return self.pool.run(Node.of(self.nodes[node]), command, check=False, timeout=60)

    def refused(self, command: str, node: int = 0) -> str:
        """Run ``command``, which must fail for lack of permission; its stderr."""
        result = self.run(command, node)
        assert result.exit_code != 0, f"{command!r} succeeded: {result.stdout!r}"
        assert any(word in result.stderr for word in DENIED), result.stderr
        return result.stderr


@dataclass
class World:
    provider: LocalProvider
    a: Tenant
    b: Tenant
    outside: Path
    """A folder every user can traverse, where the test keeps what must stay the service's."""


def _spec(name: str, public_key: str, cluster: str) -> InstanceSpec:
    return InstanceSpec(name=name, flavor="local.small", public_key=public_key,
                        host="local-host-1", metadata={"cluster": cluster})


@pytest.fixture
def world(provider: LocalProvider) -> Iterator[World]:
    tag = uuid.uuid4().hex[:6]
    tenants = []
    for cluster, count in ((f"cluster-a-{tag}", 2), (f"cluster-b-{tag}", 1)):
        private, public = generate_keypair(cluster)
        nodes = [provider.create_instance(_spec(f"{cluster}-{i}", public, cluster))
                 for i in range(count)]
        for node in nodes:
            provider.wait_reachable(node, timeout=10)
        tenants.append(Tenant(SSHPool(private, connect_attempts=3), nodes))
    outside = node_root()
    try:
        yield World(provider, tenants[0], tenants[1], outside)
    finally:
        for tenant in tenants:
            tenant.pool.close()
        remove_node_root(outside)


def test_each_cluster_logs_in_as_an_unprivileged_user_of_its_own(world: World) -> None:
    a, b = world.a, world.b
    user_a, user_b = a.nodes[0].username, b.nodes[0].username
    assert user_a.startswith(USER_PREFIX) and user_b.startswith(USER_PREFIX)
    assert user_a != user_b and a.nodes[1].username == user_a  # one user per cluster
    uid_a = pwd.getpwnam(user_a).pw_uid
    for tenant, user in ((a, user_a), (b, user_b)):
        who = tenant.run("id -un; id -u; id -G; umask").stdout.split("\n")
        assert who[0] == user and int(who[1]) not in (0, os.geteuid())
        assert "0" not in who[2].split()  # no root group
        assert who[3] == "0077"  # whatever a session makes is its own
        check_unprivileged(user)
    # No way up: no sudo, no su, no root login.
    assert a.run("sudo -n id -u").exit_code != 0
    assert a.run("su -c 'id -u' root < /dev/null").exit_code != 0
    assert a.run("id -u").stdout.strip() == str(uid_a)


def test_a_node_cannot_read_the_service_s_state_or_its_credentials(world: World) -> None:
    a = world.a
    # The service's state folder, as the CLI makes it, with a store that holds events.
    state = private_folder(world.outside / "sahara-es")
    store = open_store(f"sqlite:///{state / 'store.db'}", upgrade=True)
    store.append(f"secret-{uuid.uuid4().hex}", [NewEvent(type="Secret", data={"k": "v"})], 0)
    try:
        files = [state / name for name in ("store.db", "store.db-wal", "store.db-shm")]
        assert all(file.stat().st_mode & 0o777 == 0o600 for file in files if file.exists())
        assert state.stat().st_mode & 0o777 == 0o700
        a.refused(f"ls {state}")
        for file in files:
            a.refused(f"cat {file} > /dev/null")
    finally:
        store.close()
    # The Cassandra credentials tools/cassandra wrote, when there are any.
    if CASSANDRA_CREDENTIALS.exists():
        a.refused(f"cat {CASSANDRA_CREDENTIALS}")
    # The service's environment (store URLs, credentials paths) through /proc.
    a.refused(f"cat /proc/{os.getpid()}/environ")


def test_a_node_cannot_touch_its_own_instance_folder_or_another_cluster_s(
        world: World) -> None:
    a, b = world.a, world.b
    own = Path(a.nodes[0].extra["folder"])
    other, other_home = Path(b.nodes[0].extra["folder"]), Path(b.nodes[0].extra["home"])
    assert b.run("echo b-secret > secret.txt && chmod 644 secret.txt").exit_code == 0
    # The other cluster's node: not listed, read, written, nor its folder written.
    a.refused(f"ls {other_home}")
    a.refused(f"cat {other_home / 'secret.txt'}")
    a.refused(f"touch {other_home / 'planted'}")
    a.refused(f"touch {other / 'planted'}")
    a.refused(f"cat {other / 'instance.json'}")
    # Its own instance folder is root's: the home is the only place it writes.
    a.refused(f"ls {own}")
    a.refused(f"touch {own / 'planted'}")
    a.refused(f"cat {own / 'ssh_host_ed25519_key'}")
    a.refused(f"cat {own / 'sshd_config'}")
    a.refused(f"cat {own / 'instance.json'}")
    a.refused(f"echo 'ssh-ed25519 AAAA attacker' >> {own / 'authorized_keys'}")
    a.refused(f"mv {own / 'home'} {own / 'elsewhere'}")
    # Another node of the same cluster has its own home, the same user: that is allowed.
    assert a.run(f"ls {a.nodes[1].extra['home']}").exit_code == 0
    assert not (own / "planted").exists() and not (other / "planted").exists()
    assert (other_home / "secret.txt").read_text() == "b-secret\n"


def test_a_node_cannot_signal_the_service_sshd_or_another_cluster(world: World) -> None:
    a, b = world.a, world.b
    started = b.run("nohup setsid sleep 300 > /dev/null 2>&1 < /dev/null & echo $!")
    b_sleeper = int(started.stdout.strip())
    targets = {"the service": os.getpid(), "its own sshd": a.nodes[0].extra["pid"],
               "the other cluster's sshd": b.nodes[0].extra["pid"],
               "the other cluster's process": b_sleeper}
    for what, pid in targets.items():
        stderr = a.refused(f"kill -0 {pid}")
        assert "Operation not permitted" in stderr, what
    a.refused(f"kill -9 {os.getpid()}")
    os.kill(b_sleeper, 0)  # still alive


def test_the_reported_exploit_makes_no_root_file_and_reads_no_root_file(world: World) -> None:
    """The report: a Spark JVM option ``-XX:OnError=touch /tmp/pwned`` made a root-owned file.
    Whatever a node starts (a JVM's OnError hook is a shell command like this one) runs as
    the node's user; and the ``@argfile`` trick reads files only as that user."""
    a = world.a
    uid = pwd.getpwnam(a.nodes[0].username).pw_uid
    planted = Path(tempfile.gettempdir()) / f"sahara-es-pwned-{uuid.uuid4().hex}"
    try:
        assert a.run(f"sh -c {shlex.quote(f'touch {planted}')}").exit_code == 0
        owner = planted.stat()
        assert owner.st_uid == uid != 0 and owner.st_mode & 0o777 == 0o600
    finally:
        planted.unlink(missing_ok=True)
    secret_text = f"root-only-{uuid.uuid4().hex}"
    secret = world.outside / "root-only.txt"
    secret.write_text(f"-Dx={secret_text}\n")
    secret.chmod(0o600)
    a.refused(f"cat {secret}")
    java = a.run(f"java @{secret} -version")
    assert java.exit_code != 0 and secret_text not in java.stdout + java.stderr
    assert "could not open" in java.stderr or "denied" in java.stderr.lower(), java.stderr


def test_a_node_reaches_cassandra_only_to_be_refused(world: World) -> None:
    if not cassandra_up():
        if os.environ.get("SAHARA_ES_REQUIRE_CASSANDRA"):
            pytest.fail("the Cassandra node is not running (tools/cassandra start)")
        pytest.skip("the Cassandra node is not running (tools/cassandra start)")
    probe = f"""
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable
for credentials in (None, ("cassandra", "cassandra")):
    auth = PlainTextAuthProvider(*credentials) if credentials else None
    cluster = Cluster([{CASSANDRA_HOST!r}], protocol_version=5, auth_provider=auth,
                      connect_timeout=10)
    try:
        cluster.connect().execute("SELECT role FROM system_auth.roles")
        print("OPEN")
    except NoHostAvailable as error:
        print("REFUSED", *sorted({{type(e).__name__ for e in error.errors.values()}}))
    finally:
        cluster.shutdown()
"""
    result = world.a.pool.run(Node.of(world.a.nodes[0]), f"{shlex.quote(sys.executable)} -",
                              stdin=probe, check=False, timeout=120)
    # The firewall refuses the connection (doc/security.rst); were it off, Cassandra would
    # refuse the login.
    lines = result.stdout.split("\n")[:2]
    assert len(lines) == 2 and all(line in ("REFUSED AuthenticationFailed",
                                            "REFUSED ConnectionRefusedError")
                                   for line in lines), (result.stdout, result.stderr[-2000:])


def test_the_last_node_of_a_cluster_takes_its_user_and_its_files_in_tmp_along(
        world: World) -> None:
    a = world.a
    user = a.nodes[0].username
    left = Path(tempfile.gettempdir()) / f"sahara-es-left-{uuid.uuid4().hex}"
    started = a.run(f"mkdir {left} && touch {left}/data {left}.file &&"
                    " nohup setsid sleep 300 > /dev/null 2>&1 < /dev/null &")
    assert started.exit_code == 0 and left.is_dir()
    world.provider.delete_instance(a.nodes[0].name)
    assert pwd.getpwnam(user)  # the cluster's other node still runs as it
    assert a.run("id -un", node=1).stdout.strip() == user
    world.provider.delete_instance(a.nodes[1].name)
    with pytest.raises(KeyError):
        pwd.getpwnam(user)
    # Its uid may be the next cluster's: nothing of it is left to inherit.
    assert not left.exists() and not Path(f"{left}.file").exists()


def test_a_privileged_or_service_user_is_refused_as_a_node_user() -> None:
    for user in ("root", pwd.getpwuid(os.geteuid()).pw_name):
        with pytest.raises(InfraError, match="privileged"):
            check_unprivileged(user)
