"""What every command shares: the console and the store named by ``--store``."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from sahara_es.store import Store, open_store

console = Console(soft_wrap=True)


def default_data_dir() -> Path:
    """Where the service keeps its state (the embedded store): its user's alone (0700)."""
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return data_home / "sahara-es"


def private_folder(folder: Path) -> Path:
    """Make ``folder`` (if missing) and close it to other users: the service's state lives
    there, and tenants' nodes run as other users on the same machine."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid == os.geteuid():
        folder.chmod(0o700)
    return folder


NODES_ENV = "SAHARA_ES_NODES_DIR"


def default_nodes_dir() -> Path:
    """Where local instances live: outside the state folder, which nodes' users must not
    traverse (``doc/security.rst``). Their folder is made 0711 by the local provider."""
    return Path(os.environ.get(NODES_ENV) or "/var/lib/sahara-es/nodes")


node_network_isolation_option = click.option(
    "--node-network-isolation/--no-node-network-isolation",
    envvar="SAHARA_ES_NODE_NETWORK_ISOLATION", default=True, show_default=True,
    help="Firewall each cluster's local nodes off from other clusters' nodes (iptables; the"
         " local provider refuses to create nodes without it). Off only where tenants trust"
         " each other ($SAHARA_ES_NODE_NETWORK_ISOLATION=off).")


def local_provider_options(provider: str, node_network_isolation: bool) -> dict[str, Any]:
    """The local provider's options from the command line (none for other providers)."""
    return {"network_isolation": node_network_isolation} if provider == "local" else {}


def default_store_url() -> str:
    return f"sqlite:///{private_folder(default_data_dir()) / 'store.db'}"


class Context:
    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None

    def store(self, *, upgrade: bool = False) -> Store:
        if self._store is None:
            self._store = open_store(self.url, upgrade=upgrade)
        return self._store


def run_until_signalled() -> None:
    """Block until SIGTERM or SIGINT: the long-running commands' main thread."""
    asked_to_stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: asked_to_stop.set())
    while not asked_to_stop.wait(0.5):
        pass
