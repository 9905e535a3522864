"""Network isolation of local nodes (``doc/security.rst``): a cluster's node reaches its own
cluster's nodes and no other cluster's, and a cluster leaves no firewall rule behind.

Two clusters, A (two nodes) and B (one node), on real local nodes; every attempt is made from
a shell on a node, as the node's user, as the plugins log in.
"""

from __future__ import annotations

import pwd
import shlex
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sahara_es.infra import InstanceSpec, LocalProvider, generate_keypair
from sahara_es.infra.base import InfraError
from sahara_es.infra.firewall import CHAIN, FROM_CHAIN, TO_CHAIN, NodeFirewall
from sahara_es.infra.local import DEFAULT_ADDRESS_RANGE
from sahara_es.store import Store
from tests.nodes import Tenant as SSHTenant
from tests.nodes import two_tenants

pytestmark = pytest.mark.xdist_group("local-infra")

CONNECT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
        s.settimeout(3)
        print("CONNECTED", s.recv(64).decode() or "-")
except OSError as error:
    print("FAILED", type(error).__name__)
"""

LISTEN = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], 0))
server.listen()
print(server.getsockname()[1], flush=True)
sys.stdout.close()
while True:
    connection, _ = server.accept()
    try:
        connection.sendall(sys.argv[2].encode())
    except OSError:
        pass
    connection.close()
"""


class Tenant(SSHTenant):
    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.nodes[0].username).pw_uid

    def connect(self, address: str, port: int, node: int = 0) -> str:
        """What a client on the node gets: ``CONNECTED <greeting>`` or ``FAILED <error>``."""
        result = self.run(f"python3 -c {shlex.quote(CONNECT)} {address} {port}", node)
        assert result.exit_code == 0, result.stderr
        return result.stdout.strip()

    def listen(self, address: str, greeting: str, node: int = 0) -> int:
        """Start a listener on the node, as its user, that greets; its port."""
        result = self.run(f"nohup setsid python3 -c {shlex.quote(LISTEN)} {address} {greeting}"
                          " 2>/dev/null < /dev/null &", node)
        assert result.exit_code == 0, result.stderr
        # The port comes back on the session's stdout before the listener closes it.
        return int(result.stdout.split()[0])


@dataclass
class World:
    provider: LocalProvider
    a: Tenant
    b: Tenant


@pytest.fixture
def world(provider: LocalProvider) -> Iterator[World]:
    with two_tenants(provider, "net", Tenant) as (a, b):
        yield World(provider, a, b)


def iptables_rules() -> str:
    return subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True,
                          check=True).stdout


def uid_rules(uid: int) -> list[str]:
    return [line for line in iptables_rules().splitlines()
            if f"--uid-owner {uid} " in line + " "]


def root_connect(address: str, port: int) -> bytes:
    with socket.create_connection((address, port), timeout=5) as connection:
        connection.settimeout(3)
        return connection.recv(64)


def test_a_node_reaches_its_own_cluster_s_nodes_and_no_other_cluster_s(world: World) -> None:
    a, b = world.a, world.b
    a0, a1, b0 = a.nodes[0], a.nodes[1], b.nodes[0]
    b_port = b.listen(b0.address, "b-secret")
    a_port = a.listen(a1.address, "a-hello", node=1)
    # Another cluster's node: neither a listener its user started nor its sshd.
    assert a.connect(b0.address, b_port) == "FAILED ConnectionRefusedError"
    assert a.connect(b0.address, b0.ssh_port) == "FAILED ConnectionRefusedError"
    assert b.connect(a1.address, a_port) == "FAILED ConnectionRefusedError"
    # Its own cluster's other node, and its own node: both ways.
    assert a.connect(a1.address, a_port) == "CONNECTED a-hello"
    assert a.connect(a1.address, a1.ssh_port).startswith("CONNECTED SSH-")
    assert a.connect(a0.address, a0.ssh_port, node=1).startswith("CONNECTED SSH-")
    # The service (root) stays unrestricted: it reads the nodes' daemons.
    assert root_connect(b0.address, b_port) == b"b-secret"
    assert root_connect(a1.address, a_port) == b"a-hello"


def test_a_listener_on_another_cluster_s_address_cannot_answer(world: World) -> None:
    """B may bind a free port of A's address (the kernel lets anyone bind any 127/8 address),
    say before A's daemon does; what it sends from there is rejected."""
    a, b = world.a, world.b
    a1 = a.nodes[1]
    port = b.listen(a1.address, "b-hijack")
    # The handshake may complete (the kernel answers it), not a byte of B's comes through.
    assert a.connect(a1.address, port).startswith("FAILED")


def test_udp_to_another_cluster_s_node_is_refused(world: World) -> None:
    send = ("import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try:\n"
            "    s.sendto(b'x', (sys.argv[1], 9))\n"
            "    print('SENT')\n"
            "except OSError as error:\n"
            "    print('FAILED', type(error).__name__)\n")
    result = world.a.run(f"python3 -c {shlex.quote(send)} {world.b.nodes[0].address}")
    assert result.stdout.strip().startswith("FAILED"), result.stdout


def test_the_service_s_cassandra_and_rabbitmq_ports_are_closed_to_nodes(world: World) -> None:
    for port in (9042, 7000, 7199, 5682, 25682, 4374):
        assert world.a.connect("127.0.0.1", port) == "FAILED ConnectionRefusedError"


def test_deleting_a_cluster_leaves_no_rule_of_its_uid(world: World) -> None:
    a, b = world.a, world.b
    uid_a, uid_b = a.uid, b.uid
    a0, a1, b0 = a.nodes[0], a.nodes[1], b.nodes[0]
    assert any(f"-d {b0.address}/32" in line for line in uid_rules(uid_b))
    world.provider.delete_instance(a0.name)
    # A's deleted node's address is closed to A; its other node's is still open.
    rules_a = uid_rules(uid_a)
    assert not any(f"{a0.address}/32" in line for line in rules_a)
    assert any(f"-d {a1.address}/32" in line for line in rules_a)
    assert any("REJECT" in line for line in rules_a)
    world.provider.delete_instance(b0.name)
    with pytest.raises(KeyError):
        pwd.getpwnam(b0.username)
    assert uid_rules(uid_b) == []  # its uid is the next useradd's
    world.provider.delete_instance(a1.name)
    assert uid_rules(uid_a) == []
    # The chains and the jump stay, for the next clusters.
    rules = iptables_rules()
    assert f"-A OUTPUT -j {CHAIN}" in rules
    assert f"-A {CHAIN} -j {FROM_CHAIN}" in rules and f"-A {CHAIN} -j {TO_CHAIN}" in rules


def test_the_rules_are_added_once_however_often_they_are_asked_for(world: World) -> None:
    a = world.a
    uid = a.uid
    before = sorted(uid_rules(uid))
    # One REJECT per chain and one for the service's ports, a RETURN per chain and address.
    assert len(before) == 3 + 2 * len(a.nodes), before
    firewall = NodeFirewall(DEFAULT_ADDRESS_RANGE)
    for _ in range(2):
        firewall.ensure_chains()
        firewall.close_user(uid)
        for node in a.nodes:
            firewall.open_address(uid, node.address)
    # Creating an instance again (a retried creation) adds nothing either.
    world.provider.create_instance(InstanceSpec(
        name=a.nodes[0].name, flavor="local.small", public_key="unused",
        host="local-host-1", metadata=a.nodes[0].extra["metadata"]))
    assert sorted(uid_rules(uid)) == before
    assert iptables_rules().count(f"-A OUTPUT -j {CHAIN}") == 1
    # Each own address is allowed before the range is refused.
    for chain in (FROM_CHAIN, TO_CHAIN):
        lines = [line for line in uid_rules(uid) if line.startswith(f"-A {chain} ")]
        assert all("RETURN" in line for line in lines[:len(a.nodes)]), lines


def test_rules_of_a_uid_that_is_no_node_user_are_swept() -> None:
    """What a crashed process left (rules of a uid whose user is gone) goes at the next sweep,
    before a useradd could hand the uid to another user."""
    taken = {entry.pw_uid for entry in pwd.getpwall()}
    ghost = next(uid for uid in range(3_999_000_000, 4_000_000_000) if uid not in taken)
    firewall = NodeFirewall(DEFAULT_ADDRESS_RANGE)
    firewall.ensure_chains()
    firewall.close_user(ghost)
    firewall.open_address(ghost, "127.10.255.1")
    assert len(firewall.rules(ghost)) == 5
    assert ghost in firewall.sweep(lambda uid: uid != ghost)
    assert firewall.rules(ghost) == [] and uid_rules(ghost) == []


def test_without_iptables_the_provider_refuses_unless_isolation_is_off(
        sqlite_store: Store, provider: LocalProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sahara_es.infra.firewall.find_iptables", lambda: None)
    blind = LocalProvider(sqlite_store, root=provider.root, stop_grace=2.0)
    _, public = generate_keypair("blind")
    spec = InstanceSpec(name=f"blind-{uuid.uuid4().hex[:6]}", flavor="local.small",
                        public_key=public, host="local-host-1")
    with pytest.raises(InfraError, match=r"network isolation .* cannot be enforced"):
        blind.create_instance(spec)
    assert blind.get_instance(spec.name) is None
    monkeypatch.undo()
    open_ = LocalProvider(sqlite_store, root=provider.root, stop_grace=2.0,
                          network_isolation=False)
    instance = open_.create_instance(spec)
    try:
        open_.wait_reachable(instance, timeout=10)
        assert uid_rules(pwd.getpwnam(instance.username).pw_uid) == []
    finally:
        open_.delete_instance(spec.name)
