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

On Cassandra the store is a keyspace of its own, dropped first; the feed is read once the
relay has copied every append into it.

Then the feed lag, from commit to delivery, on both stores: a writer process appends one
event at a time from 16 threads (c16) to 20 000 streams for --lag-seconds, a consumer process
tails ``read_feed`` from the feed's end (on Cassandra its process also runs the relay), and
each event's lag is the time the consumer received it minus the time its ``append()``
returned (one machine, one clock: the writer records when each append returned, the
consumer when each event arrived). Measured with the two processes free to run on any core,
and pinned (``taskset``) to separate cores of the first two: ``lag.p50_ms``/``lag.p99_ms``
and ``lag_pinned.*``; both with the writer flat out, saturating the one node. Then, unpinned,
with the writer held to half the flat-out rate (``lag_half_rate.*``): a service is not run at
saturation. The consumer sleeps 10 ms when it finds nothing new.
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
from tests import feedchaos
from tests.factories import CASSANDRA_HOST, drop_cassandra_keyspace

BENCH_KEYSPACE = "sahara_es_bench_audit"
BENCH_CASSANDRA_URL = f"cassandra://{CASSANDRA_HOST}:9042/{BENCH_KEYSPACE}"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object of figures")
    parser.add_argument("--sqlite-only", action="store_true", help="skip Cassandra")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--per-stream", type=int, default=100, help="events per stream (≤ 100)")
    parser.add_argument("--lag-seconds", type=float, default=8.0,
                        help="how long the writer appends while the feed lag is measured")
    parser.add_argument("--lag-only", action="store_true", help="measure the feed lag only")
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
    relay = getattr(store, "feed_relay", None)
    if relay is not None:  # Cassandra: how fast the relay copies them all into the feed
        started = time.perf_counter()
        relay.start()
        while int(feedchaos.feed_end(store) or 0) < total:
            if time.perf_counter() - started > 600:
                raise AssertionError("the relay did not copy every event within 600 s")
            time.sleep(0.05)
        figures[f"{name}.relay.events_per_s"] = total / (time.perf_counter() - started)
    # The feed delivers at least once: a relay that crashed may have copied some twice.
    figures[f"{name}.feed.events_per_s"] = timed(lambda: read_feed(store), total, at_least=True)
    for what, fn in (("streams", read_streams), ("replay", replay), ("export", export)):
        figures[f"{name}.{what}.events_per_s"] = timed(lambda fn=fn: fn(store), total)
    return figures


LAG_KEYSPACE = "sahara_es_bench_lag"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def feed_lag(url: str, folder: Path, seconds: float, *, pinned: bool,
             rate: float | None = None) -> dict[str, float]:
    """Commit-to-delivery lag of the feed, in ms, with a c16 writer process and a consumer
    process (its relay too, on Cassandra); ``pinned``: on CPUs 0 and 1 respectively."""
    folder.mkdir(parents=True, exist_ok=True)
    cassandra = url.startswith("cassandra:")
    stop, consumed, written = folder / "stop", folder / "consumer.jsonl", folder / "writer.jsonl"
    consumer_spec = feedchaos.ConsumerSpec(url, str(consumed), "lag-", None, str(stop),
                                           limit=500, project=False)
    consumer = feedchaos.spawn("consumer", feedchaos.save_spec(consumer_spec,
                                                               folder / "consumer.json"),
                               cpus="1" if pinned else None)
    try:
        feedchaos._wait_for(consumed, "ready", consumer)
        writer_spec = feedchaos.WriterSpec(
            "lag", feedchaos.with_params(url, feed_relay="off") if cassandra else url,
            [f"lag-{uuid.uuid4().hex[:8]}-{n}" for n in range(20_000)], seconds,
            str(written), threads=16, max_events=1, rate=rate)
        writer = feedchaos.spawn("writer", feedchaos.save_spec(writer_spec,
                                                               folder / "writer.json"),
                                 cpus="0" if pinned else None)
        writer.wait(timeout=seconds + 120)
        returned = {r["outcome"]: r["at"] for r in feedchaos.read_records(written)
                    if isinstance(r, dict) and "version" in r}
        deadline = time.time() + 60
        while time.time() < deadline:
            received: dict[str, float] = {}
            for _, _, event_id, _, at in feedchaos.deliveries(consumed):
                received.setdefault(event_id, at)
            if set(returned) <= set(received):
                break
            time.sleep(0.2)
        stop.touch()
        consumer.wait(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
    lags = [(received[i] - at) * 1000 for i, at in returned.items() if i in received]
    return {"p50_ms": _percentile(lags, 0.50), "p99_ms": _percentile(lags, 0.99),
            "max_ms": max(lags), "events": float(len(returned)),
            "undelivered": float(len(set(returned) - set(received))),
            "appends_per_s": len(returned) / seconds}


def lag_figures(seconds: float, sqlite_only: bool, folder: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    backends = [("sqlite", f"sqlite:///{folder}/lag.db")]
    if not sqlite_only:
        backends.append(("cassandra", f"cassandra://{CASSANDRA_HOST}:9042/{LAG_KEYSPACE}"))
    for name, url in backends:
        flat_out: float | None = None
        # Flat out (the writer saturates the node), pinned, then at half that rate: a
        # service is not run at saturation, and the lag there is what its users see.
        for label, pinned, half in (("lag", False, False), ("lag_pinned", True, False),
                                    ("lag_half_rate", False, True)):
            if name == "cassandra":
                drop_cassandra_keyspace(LAG_KEYSPACE)
            else:
                Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
            open_store(url, upgrade=True).close()
            rate: float | None = flat_out / 2 if half and flat_out else None
            measured = feed_lag(url, folder / f"{name}-{label}", seconds, pinned=pinned,
                                rate=rate)
            if label == "lag":
                flat_out = measured["appends_per_s"]
            figures.update({f"{name}.{label}.{key}": value for key, value in measured.items()})
    return figures


def main() -> None:
    args = arguments()
    if args.per_stream > 100:
        raise SystemExit("--per-stream is at most 100 (one append per stream)")
    figures: dict[str, Any] = {"events": args.streams * args.per_stream,
                               "streams": args.streams}
    with tempfile.TemporaryDirectory() as folder:
        figures.update(lag_figures(args.lag_seconds, args.sqlite_only, Path(folder)))
    if args.lag_only:
        show_lag(figures, args.json)
        return
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/bench.db", upgrade=True)
        figures.update(measure(store, "sqlite", args.streams, args.per_stream, 1, 0))
        store.close()
    if not args.sqlite_only:
        drop_cassandra_keyspace(BENCH_KEYSPACE)
        store = open_store(BENCH_CASSANDRA_URL, upgrade=True)
        figures.update(measure(store, "cassandra", args.streams, args.per_stream, 16, 0))
        store.close()
    rows = [(name.removesuffix(".events_per_s"), "events/s", value)
            for name, value in figures.items() if name.endswith("events_per_s")]
    rows += _lag_rows(figures)
    report(f"reading and replaying {figures['events']:,} events; the feed's lag", rows,
           figures, args.json,
           ["write: one append of all a stream's events; feed: read_feed from the start;"
            " streams: list_streams + read; replay: read + decode + fold WorkflowState;"
            " export: the whole store as JSON lines, streams found through the feed",
            LAG_NOTE])


LAG_NOTE = ("lag: append() returned -> the consumer received it, a c16 writer process and a"
            " consumer process (and its relay); _pinned: on CPUs 0 and 1 (taskset);"
            " _half_rate: the writer held to half the flat-out rate")


def _lag_rows(figures: dict[str, Any]) -> list[tuple[str, str, float]]:
    units = {"p50_ms": "ms", "p99_ms": "ms", "max_ms": "ms", "events": "events",
             "undelivered": "events", "appends_per_s": "per s"}
    return [(name, units[name.rsplit(".", 1)[1]], value) for name, value in figures.items()
            if ".lag" in name]


def show_lag(figures: dict[str, Any], as_json: bool) -> None:
    report("the feed's lag, commit to delivery", _lag_rows(figures),
           {k: v for k, v in figures.items() if ".lag" in k}, as_json, [LAG_NOTE])


if __name__ == "__main__":
    main()
