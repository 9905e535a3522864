"""What every benchmark shares: stores from the test factories, timing, table and JSON output."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flask import Flask
from rich.console import Console
from rich.table import Table

from sahara_es.api.app import ApiConfig
from sahara_es.api.compose import app_for
from sahara_es.infra.base import HostInventory
from sahara_es.infra.quotas import QuotaLimits
from sahara_es.provisioning.services import build_services, provisioning_services
from sahara_es.store import Store, open_store
from tests.factories import drop_cassandra_keyspace


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="print one JSON object of figures")
    parser.add_argument("--ops", type=int, default=400, help="operations per measurement")
    parser.add_argument("--sqlite-only", action="store_true", help="skip Cassandra")
    return parser.parse_args()


def rate(op: Callable[[int], Any], ops: int, concurrency: int) -> float:
    """Operations per second of ``op(i)`` for i in range(ops), over ``concurrency`` threads."""
    started = time.perf_counter()
    if concurrency == 1:
        for i in range(ops):
            op(i)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(op, range(ops)))
    return ops / (time.perf_counter() - started)


def report(title: str, rows: list[tuple[str, str, float]], figures: dict[str, Any],
           as_json: bool, notes: list[str]) -> None:
    if as_json:
        json.dump(figures, sys.stdout, indent=2, sort_keys=True)
        print()
        return
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("unit")
    table.add_column("value", justify="right")
    for name, unit, value in rows:
        table.add_row(name, unit, f"{value:,.2f}")
    console = Console(soft_wrap=True)
    console.print(table)
    for note in notes:
        console.print(note)


# -- the end-to-end benchmarks (api, fairness, provision) ------------------------------------

def scenario_parser(description: str, *, sqlite_only: bool = True) -> argparse.ArgumentParser:
    """A parser with the benchmark's docstring as its help and ``--json``; ``--sqlite-only``
    too unless the benchmark opts into Cassandra its own way."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object of figures")
    if sqlite_only:
        parser.add_argument("--sqlite-only", action="store_true", help="skip Cassandra")
    return parser


@contextlib.contextmanager
def fresh_store(backend: str, keyspace: str, cassandra_url: str,
                sqlite_path: Path) -> Iterator[tuple[str, Store]]:
    """A store nobody wrote to (the keyspace dropped first), its schema made; its URL."""
    if backend == "cassandra":
        drop_cassandra_keyspace(keyspace)
        url = cassandra_url
    else:
        url = f"sqlite:///{sqlite_path}"
    store = open_store(url, upgrade=True)
    try:
        yield url, store
    finally:
        store.close()


def api_with_services(store: Store, data_dir: Path, host_count: int,
                      quota: QuotaLimits) -> tuple[dict[str, Any], Flask]:
    """Local nodes on ``host_count`` hosts of 8 vCPUs and 16 GB, and the v2 API in this
    process (noauth, the ``fake`` plugin) provisioning through them."""
    hosts = [HostInventory(f"local-host-{i}", 8, 16384) for i in range(1, host_count + 1)]
    services = build_services(store, root=data_dir, hosts=hosts, quota_defaults=quota)
    app = app_for(ApiConfig(auth="noauth", plugins=["fake"], engines=True), store=store,
                  quota=provisioning_services(services).quota)
    return services, app


def wide_console() -> Console:
    return Console(soft_wrap=True, width=max(Console().width, 110))


def print_notes(console: Console, notes: list[str]) -> None:
    for note in notes:
        console.print(note, highlight=False)


def store_notes(figures: dict[str, Any], backends: list[str]) -> list[str]:
    """One line a backend: how its store was set up (``figures[backend_store]``, no path)."""
    return [f"{b}: " + ", ".join(f"{k}={v}" for k, v in figures[f"{b}_store"].items()
                                 if k != "path") for b in backends]


def output(figures: dict[str, Any], as_json: bool, show_tables: Callable[[], None]) -> None:
    """The figures as one JSON object, or ``show_tables()``."""
    if as_json:
        report("", [], figures, True, [])
    else:
        show_tables()


class Steal:
    """The part of the machine's CPU time the hypervisor gave to others while measuring
    (``/proc/stat``'s steal; 0.0 on bare metal): latencies on a VM lengthen with it, so it
    is printed beside them."""

    fraction = 0.0

    @staticmethod
    def _ticks() -> list[int]:
        with open("/proc/stat") as stat:
            return [int(n) for n in stat.readline().split()[1:]]

    def __enter__(self) -> Steal:
        self._before = self._ticks()
        return self

    def __exit__(self, *_: object) -> None:
        spent = [after - before for before, after in zip(self._before, self._ticks(),
                                                         strict=True)]
        self.fraction = spent[7] / max(1, sum(spent)) if len(spent) > 7 else 0.0
