"""A hostile tenant on real local nodes: whatever it runs on its node, it reaches nothing of
the service's and nothing of another cluster's (``doc/security.rst``).

Two clusters, A (two nodes) and B (one node), each with its own key. Every attempt is made
from a shell on a node, logged in as the node's user with its cluster's key, as the plugins
log in; every attempt must fail, and the test asserts how.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sahara_es.cli.context import private_folder
from sahara_es.events import NewEvent
from sahara_es.infra import (
    LocalProvider,
    Node,
    local,
)
from sahara_es.infra.base import InfraError
from sahara_es.infra.firewall import find_iptables
from sahara_es.infra.local import (
    USER_PREFIX,
    _user_database_locked,
    check_unprivileged,
    uid_processes,
)
from sahara_es.store import open_store
from tests.factories import CASSANDRA_CREDENTIALS, CASSANDRA_HOST, cassandra_up
from tests.nodes import Tenant as SSHTenant
from tests.nodes import node_root, remove_node_root, two_tenants

pytestmark = pytest.mark.xdist_group("local-infra")

DENIED = ("Permission denied", "Operation not permitted")


class Tenant(SSHTenant):
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


@pytest.fixture
def world(provider: LocalProvider) -> Iterator[World]:
    with two_tenants(provider, "cluster", Tenant) as (a, b):
        outside = node_root()
        try:
            yield World(provider, a, b, outside)
        finally:
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


# Re-forks under a new pid every PAUSE seconds, with no environment (no instance mark) and in
# a session of its own: by the time a scan of /proc has listed its pid, it has moved on. It
# records itself in /tmp/<tag> twice a second, and ends by itself after two minutes should
# the provider fail to end it.
HOPPER = """import os, time
end = time.time() + 120
last = 0
while time.time() < end:
    time.sleep(PAUSE)
    if time.time() - last > 0.5:
        last = time.time()
        with open("/tmp/TAG", "a") as out:
            out.write("%d\\n" % os.getpid())
    if os.fork():
        os._exit(0)
"""


def _pids_running(text: str) -> list[int]:
    """Live processes whose command line holds ``text``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if text.encode() in cmdline.read():
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_process_that_keeps_changing_pid_does_not_outlive_its_cluster(world: World) -> None:
    """The review's reproduction (issue 12), as a specification: a node process that re-forks
    continuously, out of its instance's marks (``env -i setsid``); the deletion of the
    cluster's last instance completes, and nothing of its uid survives it: no process, no
    user, no firewall rule (the uid is the next node user's). Another cluster's processes
    are not touched."""
    a, b = world.a, world.b
    node = b.nodes[0]  # cluster B's only instance
    uid = pwd.getpwnam(node.username).pw_uid
    iptables = find_iptables()
    if iptables is not None:
        assert re.search(rf"--uid-owner {uid}\b", _iptables_rules(iptables))
    tag = f"sahara-es-hop-{uuid.uuid4().hex[:12]}"
    hopping = Path(tempfile.gettempdir()) / tag
    # The review's two: re-forking every 10 ms, and as fast as it can.
    hoppers = [HOPPER.replace("TAG", tag).replace("PAUSE", pause) for pause in ("0.01", "0")]
    started = b.run(" ".join(f"env -i setsid {shlex.quote(sys.executable)} -c"
                             f" {shlex.quote(code)} < /dev/null > /dev/null 2>&1 &"
                             for code in hoppers) + " sleep 1.5; echo started")
    assert started.stdout.strip() == "started", started.stderr
    a_sleeper = int(a.run("nohup setsid sleep 300 > /dev/null 2>&1 < /dev/null & echo $!")
                    .stdout.strip())
    try:
        pids = {int(pid) for pid in hopping.read_text().split()}
        assert len(pids) >= 4 and hopping.stat().st_uid == uid  # hopping, as the node's user

        world.provider.delete_instance(node.name)

        with pytest.raises(KeyError):
            pwd.getpwnam(node.username)
        assert world.provider.get_instance(node.name) is None
        assert _pids_running(tag) == []
        hopping.unlink(missing_ok=True)  # the provider removed it; a survivor would write it
        with _user_database_locked():  # no node user is made meanwhile (it might take the uid)
            if not _uid_reused(uid):  # a parallel test's new node user may have it already
                assert uid_processes(uid) == []
                if iptables is not None:
                    rules = _iptables_rules(iptables)
                    assert not re.search(rf"--uid-owner {uid}\b", rules), rules
        time.sleep(1.5)
        assert not hopping.exists() and _pids_running(tag) == []
        os.kill(a_sleeper, 0)  # cluster A's process lives on, as its user
        assert a.run("id -un").stdout.strip() == a.nodes[0].username
    finally:
        for _ in range(200):  # a failed run leaves no hopper behind (it ends by itself too)
            for pid in _pids_running(tag):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        hopping.unlink(missing_ok=True)


def _iptables_rules(iptables: str) -> str:
    return subprocess.run([iptables, "-w", "-S"], capture_output=True, text=True,
                          check=True).stdout


def _uid_reused(uid: int) -> bool:
    """Whether another user holds ``uid`` (a parallel test's node user may take it at once)."""
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True



class _Firewall:
    """Records which uids' rules were dropped."""

    def __init__(self) -> None:
        self.forgotten: list[int] = []

    def forget(self, uid: int) -> int:
        self.forgotten.append(uid)
        return 0


@pytest.fixture
def spare_node_user() -> Iterator[str]:
    """A node user of no cluster (removed afterwards if the test left it)."""
    user = f"{USER_PREFIX}{uuid.uuid4().hex[:16]}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", user],
                   check=True, capture_output=True)
    try:
        yield user
    finally:
        subprocess.run(["userdel", user], capture_output=True)


@pytest.mark.parametrize("busy_times", [2, 99])
def test_a_user_still_in_use_is_killed_again_and_never_left_half_removed(
        spare_node_user: str, busy_times: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """userdel finding the user in use (a process of it appeared after the kill) does not wedge
    the removal: the processes are killed again and userdel retried; if it never succeeds, a
    clear InfraError, and the user and its firewall rules are kept (a process still runs)."""
    uid = pwd.getpwnam(spare_node_user).pw_uid
    calls: list[str] = []
    real_kill, real_tool = local.kill_uid_processes, local._run_user_tool

    def kill(*args: Any, **kwargs: Any) -> int:
        calls.append("kill")
        return real_kill(*args, **kwargs)

    def tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(argv[0])
        if argv[0] == "userdel" and calls.count("userdel") <= busy_times:
            return subprocess.CompletedProcess(
                argv, 8, "", f"userdel: user {argv[-1]} is currently used by process 4242\n")
        return real_tool(argv)

    monkeypatch.setattr(local, "kill_uid_processes", kill)
    monkeypatch.setattr(local, "_run_user_tool", tool)
    firewall = _Firewall()
    if busy_times < 5:
        local.delete_node_user(spare_node_user, firewall)  # type: ignore[arg-type]
        with pytest.raises(KeyError):
            pwd.getpwnam(spare_node_user)
        # Each userdel comes after a kill; the rules go after the userdel that succeeded.
        assert calls == ["kill"] + ["kill", "userdel"] * (busy_times + 1)
        assert firewall.forgotten == [uid]
    else:
        with pytest.raises(InfraError, match=r"failed 5 times.*currently used by process 4242"):
            local.delete_node_user(spare_node_user, firewall)  # type: ignore[arg-type]
        assert pwd.getpwnam(spare_node_user).pw_uid == uid
        assert calls == ["kill"] + ["kill", "userdel"] * 5 and firewall.forgotten == []


def test_only_node_users_processes_are_killed_and_only_node_users_removed() -> None:
    for uid in (0, os.getuid(), os.geteuid()):
        with pytest.raises(InfraError, match="refusing"):
            local.kill_uid_processes(uid, 0)
    for user in ("root", pwd.getpwuid(os.geteuid()).pw_name, "nobody"):
        with pytest.raises(InfraError, match="refusing"):
            local.delete_node_user(user, None)
