"""What every benchmark shares: stores from the test factories, timing, table and JSON output."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.console import Console
from rich.table import Table


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
