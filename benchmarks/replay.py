"""Reading and replaying a large history: what the audit CLI costs on each store.

    python benchmarks/replay.py [--json] [--sqlite-only] [--streams 1000] [--per-stream 100]

Writes --streams workflow histories of --per-stream events each (100 000 by default: a
WorkflowStarted with its graph, WorkflowOwned, TaskStarted/TaskSucceeded per task, and
WorkflowSucceeded), one append per stream, then measures in events per second:

- feed: the global feed from the start, page by page (``events tail --from-start``);
- streams: every stream of the category, read in order (``events list --category``);
- replay: the same reads, each event decoded and folded into a WorkflowState
  (``replay workflow`` for every workflow);
- export: the whole store as JSON lines, streams found through the feed (``events export``).

On Cassandra the store is a keyspace of its own, dropped first; the feed is read once its
settle window has passed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from sahara_es.cli.history import dump, to_record, walk_feed, walk_store
from sahara_es.engine import WorkflowState
from sahara_es.events import Metadata, NewEvent, registry
from sahara_es.events import workflow as ev
from sahara_es.store import Store, open_store
from tests.factories import CASSANDRA_HOST, drop_cassandra_keyspace

BENCH_KEYSPACE = "sahara_es_bench_audit"
BENCH_CASSANDRA_URL = f"cassandra://{CASSANDRA_HOST}:9042/{BENCH_KEYSPACE}"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object of figures")
    parser.add_argument("--sqlite-only", action="store_true", help="skip Cassandra")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--per-stream", type=int, default=100, help="events per stream (≤ 100)")
    return parser.parse_args()


def workflow_history(per_stream: int) -> list[NewEvent]:
    tasks = (per_stream - 3) // 2
    meta = Metadata(engine_id="bench-engine", correlation_id=uuid.uuid4().hex)
    specs = [{"id": f"t{i:03d}", "type": "bench.noop", "args": {"n": i},
              "requires": [f"t{i - 1:03d}"] if i else []} for i in range(tasks)]
    domain: list[Any] = [ev.WorkflowStarted("bench.chain", {"tasks": tasks}, specs),
                         ev.WorkflowOwned("bench-engine", 1)]
    for spec in specs:
        domain.append(ev.TaskStarted(spec["id"], 1, "bench-engine", 1))
        domain.append(ev.TaskSucceeded(spec["id"], 1, {"ok": True}, "bench-engine",
                                       duration=0.001))
    domain.append(ev.WorkflowSucceeded({}))
    while len(domain) < per_stream:
        domain.insert(-1, ev.TasksOffered({}))
    return [registry.new_event(event, meta) for event in domain]


def write(store: Store, streams: int, per_stream: int, threads: int) -> float:
    def one(_: int) -> None:
        store.append(f"workflow-{uuid.uuid4().hex}", workflow_history(per_stream), 0)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(streams)))
    return streams * per_stream / (time.perf_counter() - started)


def timed(measure: Callable[[], int], expected: int, *, at_least: bool = False) -> float:
    started = time.perf_counter()
    count = measure()
    elapsed = time.perf_counter() - started
    if count != expected and not (at_least and count > expected):
        raise AssertionError(f"read {count} events, expected {expected}")
    return count / elapsed


def read_feed(store: Store) -> int:
    return sum(1 for _ in walk_feed(store))


def read_streams(store: Store) -> int:
    return sum(1 for stream in store.list_streams("workflow") for _ in store.read(stream))


def replay(store: Store) -> int:
    count = 0
    for stream in store.list_streams("workflow"):
        state = WorkflowState(stream)
        for event in store.read(stream):
            state.fold(event)
            count += 1
        assert state.status == "succeeded"
    return count


def export(store: Store) -> int:
    return sum(len(dump(to_record(event))) > 0 for event in walk_store(store))


def measure(store: Store, name: str, streams: int, per_stream: int, threads: int,
            settle: float) -> dict[str, float]:
    total = streams * per_stream
    figures = {f"{name}.write.events_per_s": write(store, streams, per_stream, threads)}
    time.sleep(settle)
    # The feed delivers at least once: under load, Cassandra re-indexes a few late appends.
    figures[f"{name}.feed.events_per_s"] = timed(lambda: read_feed(store), total, at_least=True)
    for what, fn in (("streams", read_streams), ("replay", replay), ("export", export)):
        figures[f"{name}.{what}.events_per_s"] = timed(lambda fn=fn: fn(store), total)
    return figures


def main() -> None:
    args = arguments()
    if args.per_stream > 100:
        raise SystemExit("--per-stream is at most 100 (one append per stream)")
    figures: dict[str, Any] = {"events": args.streams * args.per_stream,
                               "streams": args.streams}
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/bench.db", upgrade=True)
        figures.update(measure(store, "sqlite", args.streams, args.per_stream, 1, 0))
        store.close()
    if not args.sqlite_only:
        drop_cassandra_keyspace(BENCH_KEYSPACE)
        store = open_store(BENCH_CASSANDRA_URL, upgrade=True)
        settle = float(store.describe().get("feed_settle_seconds", 2.0)) + 0.5
        figures.update(measure(store, "cassandra", args.streams, args.per_stream, 16, settle))
        store.close()
    rows = [(name.removesuffix(".events_per_s"), "events/s", value)
            for name, value in figures.items() if name.endswith("events_per_s")]
    report(f"reading and replaying {figures['events']:,} events", rows, figures, args.json,
           ["write: one append of all a stream's events; feed: read_feed from the start;"
            " streams: list_streams + read; replay: read + decode + fold WorkflowState;"
            " export: the whole store as JSON lines, streams found through the feed"])


if __name__ == "__main__":
    main()
