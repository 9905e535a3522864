"""Where the tests' local nodes live: a folder other users can traverse.

Nodes run as their clusters' own unprivileged users, which must reach their homes under the
provider's root; pytest's temporary folders (``/tmp/pytest-of-root``) are 0700, so the
provider would rightly refuse them. Each root is a fresh ``/tmp/sahara-es-nodes-*`` (0711:
traversable, not listable), removed afterwards; whatever a failed test left in one (an sshd,
a node user with its processes, its files in /tmp and its firewall rules) is swept at the end
of the session.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sahara_es.infra import Instance, InstanceSpec, LocalProvider, Node, SSHPool, generate_keypair
from sahara_es.infra.firewall import NodeFirewall, find_iptables
from sahara_es.infra.local import (
    DEFAULT_ADDRESS_RANGE,
    USER_PREFIX,
    delete_node_user,
    stop_processes,
)
from sahara_es.infra.ssh import CommandResult

_made: list[Path] = []


def node_root() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="sahara-es-nodes-"))
    folder.chmod(0o711)
    _made.append(folder)
    return folder


def remove_node_root(folder: Path) -> None:
    """Remove the root, first stopping what its instances still run."""
    users = set()
    for config in folder.glob("**/instances/*/sshd_config"):
        with contextlib.suppress(OSError):
            users.add((config.parent / "user").read_text().strip())
        stop_processes(config.parent.name, config, grace=2.0)
    shutil.rmtree(folder, ignore_errors=True)
    for user in users:
        if user.startswith(USER_PREFIX):
            # As the provider's removal does: every process of its uid ends (those that left
            # their instance too), then its files in /tmp, the user and its rules: the uid is
            # reused.
            firewall = NodeFirewall(DEFAULT_ADDRESS_RANGE) if find_iptables() else None
            with contextlib.suppress(Exception):
                delete_node_user(user, firewall)


def sweep_node_roots() -> None:
    """Remove every root this process made that a failed test left behind."""
    while _made:
        folder = _made.pop()
        if folder.exists():
            remove_node_root(folder)


@dataclass
class Tenant:
    """One cluster's local nodes and an SSH pool that logs in to them as its user."""

    pool: SSHPool
    nodes: list[Instance]

    def run(self, command: str, node: int = 0) -> CommandResult:
        return self.pool.run(Node.of(self.nodes[node]), command, check=False, timeout=60)


T = TypeVar("T", bound=Tenant)


@contextlib.contextmanager
def two_tenants(provider: LocalProvider, prefix: str,
                tenant: type[T]) -> Iterator[tuple[T, T]]:
    """Two clusters on ``provider``'s ``local-host-1``, reachable: ``{prefix}-a-<tag>`` of 2
    nodes and ``{prefix}-b-<tag>`` of 1, each a ``tenant`` of its own key; the pools closed
    afterwards (the nodes are the provider's to remove)."""
    tag = uuid.uuid4().hex[:6]
    tenants = []
    for cluster, count in ((f"{prefix}-a-{tag}", 2), (f"{prefix}-b-{tag}", 1)):
        private, public = generate_keypair(cluster)
        nodes = [provider.create_instance(InstanceSpec(
            name=f"{cluster}-{i}", flavor="local.small", public_key=public,
            host="local-host-1", metadata={"cluster": cluster})) for i in range(count)]
        for node in nodes:
            provider.wait_reachable(node, timeout=10)
        tenants.append(tenant(SSHPool(private, connect_attempts=3), nodes))
    try:
        yield tenants[0], tenants[1]
    finally:
        for made in tenants:
            made.pool.close()
