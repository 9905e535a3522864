"""What every command shares: the console, the configuration and the store it names."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import click
from oslo_config import cfg
from rich.console import Console

# the state folder's default is the API's: one rule for both
from sahara_es.api.app import default_data_dir as default_data_dir
from sahara_es.cli.config import ENVIRONMENT, flag, load, store_url
from sahara_es.store import Store, open_store

console = Console(soft_wrap=True)


def private_folder(folder: Path) -> Path:
    """Make ``folder`` (if missing) and close it to other users: the service's state lives
    there, and tenants' nodes run as other users on the same machine."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid == os.geteuid():
        folder.chmod(0o700)
    return folder


NODES_ENV = ENVIRONMENT[("engine", "nodes_dir")]


def nodes_dir(conf: cfg.ConfigOpts) -> Path:
    """Where local instances live (``[engine] nodes_dir``): outside the state folder, which
    nodes' users must not traverse (``doc/security.rst``). Their folder is made 0711 by the
    local provider."""
    return Path(conf.engine.nodes_dir or "/var/lib/sahara-es/nodes")


nodes_dir_option = flag("engine", "nodes_dir", type=click.Path())

node_network_isolation_option = flag("engine", "node_network_isolation")


def local_provider_options(provider: str, node_network_isolation: bool) -> dict[str, Any]:
    """The local provider's options from the command line (none for other providers)."""
    return {"network_isolation": node_network_isolation} if provider == "local" else {}


def default_store_url(data_dir: Path | None = None) -> str:
    """The embedded store: ``store.db`` in the state folder (made 0700)."""
    return f"sqlite:///{private_folder(data_dir or default_data_dir()) / 'store.db'}"


class Context:
    """What the command's group gives its commands: the configuration (files, environment
    and the group's own flags: ``sahara-es --config-file ... --store ...``) and the store."""

    def __init__(self, conf: cfg.ConfigOpts | None = None, config_files: tuple[str, ...] = (),
                 config_dirs: tuple[str, ...] = ()) -> None:
        self.conf = conf or load()
        self.config_files = config_files
        self.config_dirs = config_dirs
        self.data_dir: Path | None = None
        self._url: str | None = None
        self._store: Store | None = None

    def use_data_dir(self, data_dir: str | None = None) -> Path:
        """The state folder (``data_dir`` given, else ``[DEFAULT] data_dir``, else the
        default): without a store URL, the store is the embedded one in it. Called before the
        store is used."""
        data_dir = data_dir or self.conf.data_dir
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        return self.data_dir

    @property
    def url(self) -> str:
        """``[database] connection`` (``--store``), else the embedded store in the state
        folder (the command's, else ``[DEFAULT] data_dir``, else the default)."""
        if self._url is None:
            data_dir = self.data_dir or (Path(self.conf.data_dir) if self.conf.data_dir
                                         else None)
            self._url = store_url(self.conf) or default_store_url(data_dir)
        return self._url

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
