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
from pathlib import Path

from sahara_es.infra.firewall import NodeFirewall, find_iptables
from sahara_es.infra.local import (
    DEFAULT_ADDRESS_RANGE,
    USER_PREFIX,
    delete_node_user,
    stop_processes,
)

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
