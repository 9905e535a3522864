"""The local provider against real OpenSSH servers, driven through the SSH pool.

Each instance is an sshd on its own 127.10.x.y address; every test deletes what it created,
and a test that fails still leaves no server or process behind (the ``provider`` fixture
deletes every instance under its root).
"""

from __future__ import annotations

import json
import pwd
import socket
import time
from pathlib import Path

import pytest

from sahara_es.infra import (
    CommandsFailed,
    HostKeyMismatch,
    InfraError,
    InstanceSpec,
    LocalProvider,
    Node,
    RemoteCommandFailed,
    RemoteCommandTimeout,
    SSHPool,
    UnknownProvider,
    open_provider,
)
from sahara_es.infra.local import (
    ADDRESS_KIND,
    ADDRESS_PROJECT,
    instance_processes,
    stop_processes,
)
from sahara_es.store import Store

pytestmark = pytest.mark.xdist_group("local-infra")


def spec(name: str, public_key: str, flavor: str = "local.small") -> InstanceSpec:
    return InstanceSpec(name=name, flavor=flavor, public_key=public_key, host="local-host-1")


def processes_of(provider: LocalProvider, name: str) -> list[int]:
    return instance_processes(name, provider.folder(name) / "sshd_config")


def test_three_instances_get_three_addresses_and_each_answers_as_itself(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    instances = [provider.create_instance(spec(f"node-{i}", keypair[1])) for i in range(3)]
    for instance in instances:
        provider.wait_reachable(instance, timeout=10)

    addresses = [instance.address for instance in instances]
    assert len(set(addresses)) == 3
    assert all(address.startswith("127.10.") for address in addresses)

    nodes = [Node.of(instance) for instance in instances]
    results = pool.run_many(nodes, "hostname; echo $SAHARA_ES_INSTANCE; pwd")
    for node, instance in zip(nodes, instances, strict=True):
        _, marker, cwd = results[node].stdout.split()
        assert marker == instance.name
        assert cwd == instance.extra["home"]  # each instance has its own home


def test_a_node_s_connection_is_reused_by_later_and_concurrent_commands(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    instance = provider.create_instance(spec("reuse", keypair[1]))
    provider.wait_reachable(instance, timeout=10)
    node = Node.of(instance)

    assert pool.run(node, "echo one").stdout == "one\n"
    assert pool.run(node, "echo two").stdout == "two\n"
    results = pool.run_many([node], lambda n: f"echo {n.name}")
    assert results[node].stdout == "reuse\n"
    assert pool.connections_opened == 1


def test_creating_an_instance_twice_returns_the_first_and_another_process_finds_it(
    provider: LocalProvider, sqlite_store: Store, keypair: tuple[str, str]
) -> None:
    first = provider.create_instance(spec("twice", keypair[1]))
    again = provider.create_instance(spec("twice", keypair[1]))
    assert again == first

    # A provider built afresh over the same root stands for another engine's process.
    elsewhere = LocalProvider(sqlite_store, root=provider.root)
    assert elsewhere.get_instance("twice") == first
    assert elsewhere.get_instance("never-created") is None
    assert sqlite_store.name_owner(ADDRESS_PROJECT, ADDRESS_KIND, first.address) == "twice"


def test_an_instance_whose_sshd_died_is_restarted_and_the_pool_reconnects(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    instance = provider.create_instance(spec("revived", keypair[1]))
    provider.wait_reachable(instance, timeout=10)
    assert pool.run(Node.of(instance), "echo before").stdout == "before\n"
    # As after a reboot: the server and its sessions are gone, the folder is still there.
    stop_processes("revived", provider.folder("revived") / "sshd_config", grace=2.0)

    revived = provider.create_instance(spec("revived", keypair[1]))
    provider.wait_reachable(revived, timeout=10)
    assert revived.address == instance.address
    assert revived.extra["host_key"] == instance.extra["host_key"]
    assert revived.extra["pid"] != instance.extra["pid"]
    assert pool.run(Node.of(revived), "echo after").stdout == "after\n"
    assert pool.connections_opened == 2


def test_delete_stops_daemonized_processes_and_releases_everything(
    provider: LocalProvider, pool: SSHPool, sqlite_store: Store, keypair: tuple[str, str]
) -> None:
    instance = provider.create_instance(spec("doomed", keypair[1]))
    provider.wait_reachable(instance, timeout=10)
    node = Node.of(instance)
    daemonized = pool.run(node, "nohup setsid sleep 1000 >/dev/null 2>&1 & echo $!").stdout
    stubborn = pool.run(node, "(trap '' TERM; exec sleep 1001) >/dev/null 2>&1 & echo $!").stdout
    sleepers = [int(daemonized), int(stubborn)]  # the second ignores SIGTERM
    assert set(sleepers) <= set(processes_of(provider, "doomed"))

    provider.delete_instance("doomed")

    assert processes_of(provider, "doomed") == []  # no sleeper, no sshd
    assert not any(Path(f"/proc/{pid}/cmdline").exists()
                   and Path(f"/proc/{pid}/cmdline").read_bytes() for pid in sleepers)
    assert sqlite_store.name_owner(ADDRESS_PROJECT, ADDRESS_KIND, instance.address) is None
    assert not provider.folder("doomed").exists()
    assert provider.get_instance("doomed") is None
    provider.delete_instance("doomed")  # deleting again is a no-op


def test_a_deleted_instance_s_address_is_reused(
    provider: LocalProvider, keypair: tuple[str, str]
) -> None:
    first = provider.create_instance(spec("recycled", keypair[1]))
    provider.delete_instance("recycled")
    second = provider.create_instance(spec("recycled", keypair[1]))
    assert second.address == first.address  # the search starts at the same point
    assert second.extra["host_key"] != first.extra["host_key"]


def test_a_failing_command_reports_its_exit_code_and_redacted_output(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    instance = provider.create_instance(spec("failing", keypair[1]))
    provider.wait_reachable(instance, timeout=10)
    password = "s3cr3t-Pa55"
    command = f"seq 1 5000; echo 'login with {password} refused' >&2; exit 7"

    with pytest.raises(RemoteCommandFailed) as raised:
        pool.run(Node.of(instance), command, secrets=[password])

    failure = raised.value
    assert failure.exit_code == 7
    assert failure.stderr_tail == "login with *** refused\n"
    assert failure.stdout_tail.endswith("4999\n5000\n")
    assert len(failure.stdout_tail) == 4096  # a tail, not the whole output
    assert password not in str(failure) and password not in failure.command
    assert password not in json.dumps(failure.to_dict())


def test_a_command_may_fail_without_raising_when_asked(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    instance = provider.create_instance(spec("lenient", keypair[1]))
    result = pool.run(Node.of(instance), "echo out; echo err >&2; exit 3", check=False)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_run_many_reports_every_failing_node_and_keeps_the_others_results(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    nodes = [Node.of(provider.create_instance(spec(f"many-{i}", keypair[1])))
             for i in range(3)]

    with pytest.raises(CommandsFailed) as raised:
        pool.run_many(nodes, lambda node: "exit 4" if node.name == "many-1" else "echo ok")

    assert list(raised.value.failures) == [nodes[1]]
    assert isinstance(raised.value.failures[nodes[1]], RemoteCommandFailed)
    assert {node.name for node in raised.value.results} == {"many-0", "many-2"}


def test_a_command_past_its_timeout_is_abandoned(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    instance = provider.create_instance(spec("slow", keypair[1]))
    started = time.monotonic()
    with pytest.raises(RemoteCommandTimeout) as raised:
        pool.run(Node.of(instance), "echo partial; sleep 30", timeout=0.5)
    assert time.monotonic() - started < 5
    assert raised.value.stdout_tail == "partial\n"
    assert raised.value.retryable


def test_env_and_files_reach_the_node_without_showing_in_the_command(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    instance = provider.create_instance(spec("files", keypair[1]))
    node = Node.of(instance)
    pool.put_file(node, "conf/site.xml", "<configuration/>\n", 0o600)
    result = pool.run(node, 'cat conf/site.xml; stat -c %a conf/site.xml; echo "$GREETING"',
                      env={"GREETING": "it's here"})
    assert result.stdout == "<configuration/>\n600\nit's here\n"


def test_a_server_with_another_host_key_is_refused(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    real = provider.create_instance(spec("genuine", keypair[1]))
    impostor_key = provider.create_instance(spec("impostor", keypair[1])).extra["host_key"]
    forged = Node(real.address, real.ssh_port, real.username, impostor_key, real.name)

    with pytest.raises(HostKeyMismatch):
        pool.run(forged, "echo should not run")
    assert pool.connections_opened == 0


def test_providers_are_found_by_name(sqlite_store: Store, tmp_path: Path) -> None:
    provider = open_provider("local", store=sqlite_store, root=tmp_path / "infra")
    assert isinstance(provider, LocalProvider)
    assert provider.flavors()["local.medium"].vcpus == 2
    assert [host.name for host in provider.hosts()] == [
        "local-host-1", "local-host-2", "local-host-3"]
    with pytest.raises(UnknownProvider, match="no infrastructure provider 'nova'"):
        open_provider("nova")


def test_an_address_already_listened_on_is_passed_over(
    provider: LocalProvider, keypair: tuple[str, str]
) -> None:
    first = provider.create_instance(spec("squatted", keypair[1]))
    provider.delete_instance("squatted")
    with socket.create_server((first.address, 2222)):  # someone else's server
        second = provider.create_instance(spec("squatted", keypair[1]))
    assert second.address != first.address


def test_unknown_flavors_hosts_and_unsafe_names_are_refused(
    provider: LocalProvider, keypair: tuple[str, str]
) -> None:
    with pytest.raises(InfraError, match="unknown flavor"):
        provider.create_instance(spec("x", keypair[1], flavor="m1.huge"))
    with pytest.raises(InfraError, match="unknown host"):
        provider.create_instance(InstanceSpec("x", "local.small", keypair[1], host="elsewhere"))
    with pytest.raises(InfraError, match="invalid instance name"):
        provider.create_instance(spec("../escape", keypair[1]))


def test_a_service_that_is_not_root_cannot_sandbox_nodes_and_says_why(
    provider: LocalProvider, keypair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sahara_es.infra.local.os.geteuid", lambda: 1000)
    with pytest.raises(InfraError, match="only root can create") as refused:
        provider.create_instance(spec("unprivileged", keypair[1]))
    assert "uid 1000" in str(refused.value)
    assert provider.get_instance("unprivileged") is None


def test_a_root_behind_a_closed_folder_is_refused_naming_the_folder(
    sqlite_store: Store, keypair: tuple[str, str], nodes_root: Path
) -> None:
    closed = nodes_root / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    provider = LocalProvider(sqlite_store, root=closed / "deeper" / "infra")
    with pytest.raises(InfraError, match=f"{closed} is not traversable") as refused:
        provider.create_instance(spec("unreachable", keypair[1]))
    assert f"chmod o+x {closed}" in str(refused.value)
    assert closed.stat().st_mode & 0o777 == 0o700  # checked, never changed
    assert not (closed / "deeper").exists()


def test_instance_files_are_root_s_but_the_home_and_the_keys_sshd_reads_as_the_user(
    provider: LocalProvider, keypair: tuple[str, str]
) -> None:
    instance = provider.create_instance(spec("modes", keypair[1]))
    folder = Path(instance.extra["folder"])
    user = pwd.getpwnam(instance.username)
    modes = {path.name: (path.stat().st_uid, path.stat().st_mode & 0o777)
             for path in (folder, *folder.iterdir())}
    assert modes.pop("home") == (user.pw_uid, 0o700)
    assert modes.pop("authorized_keys") == (0, 0o644)
    assert modes.pop("modes") == (0, 0o711)
    assert modes.pop("ssh_host_ed25519_key.pub") == (0, 0o644)
    modes.pop("sshd.pid")  # sshd's own: holds a pid, nothing more
    assert modes and all(mode == (0, 0o600) for mode in modes.values()), modes
    for path in (provider.root, provider.root / "instances"):
        assert path.stat().st_mode & 0o777 == 0o711
