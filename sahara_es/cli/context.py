"""What every command shares: the console and the store named by ``--store``."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from sahara_es.store import Store, open_store

console = Console(soft_wrap=True)


def default_store_url() -> str:
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return f"sqlite:///{data_home / 'sahara-es' / 'store.db'}"


class Context:
    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None

    def store(self, *, upgrade: bool = False) -> Store:
        if self._store is None:
            self._store = open_store(self.url, upgrade=upgrade)
        return self._store
