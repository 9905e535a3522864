"""Append, lease and claim throughput of the store, against the raw driver, on both backends.

    python benchmarks/append.py [--json] [--ops N] [--sqlite-only]

Needs the Cassandra node (``tools/cassandra start``) unless ``--sqlite-only``. Ratios are
ours / raw, measured side by side in one run (raw and ours in turn, ``ROUNDS`` times, medians).

On Cassandra an append is one LWT: it also marks its stream's head for the feed relay, in the
same mutation, and writes nothing else. ``best_possible_ratio_with_a_feed.c1`` measures, with
the bare driver, the LWT plus one plain insert against the LWT alone: what a store indexing
every append in a second partition (as the feed did before the relay) could reach at most.

The relay shares the node: ``*.c16_relay_running`` measures raw and ours at c16 (in turn,
``ROUNDS`` times, medians) while a consumer process tails the feed and its relay copies every
append into it; ``*.c16_relay_running_pinned`` the same with this process on CPU 0 and the
consumer on CPU 1 (``taskset``; the node runs where it likes). ``relay_delivered`` counts the
events the consumer received meanwhile, to show the relay kept up.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import arguments, rate, report
from sahara_es.commands import repository
from sahara_es.events import NewEvent
from sahara_es.store import Store, open_store
from tests import feedchaos
from tests.contract.test_long_streams import Counter
from tests.factories import CASSANDRA_HOST, cassandra_cluster, drop_cassandra_keyspace, events

BENCH_CASSANDRA_URL = f"cassandra://{CASSANDRA_HOST}:9042/sahara_es_bench"


def event() -> list[NewEvent]:
    return [NewEvent(type="Benchmarked", data={"payload": "x" * 64})]


def raw_cassandra(ops: int, concurrency: int) -> float:
    cluster = cassandra_cluster()
    session = cluster.connect("sahara_es_bench")
    session.execute("CREATE TABLE IF NOT EXISTS raw_lwt (k text PRIMARY KEY, v text)")
    insert = session.prepare("INSERT INTO raw_lwt (k, v) VALUES (?, ?) IF NOT EXISTS")
    try:
        return rate(lambda i: session.execute(insert, (uuid.uuid4().hex, "x" * 64)),
                    ops, concurrency)
    finally:
        cluster.shutdown()


def raw_cassandra_with_index_write(ops: int) -> float:
    """The raw loop plus what any globally ordered feed costs an append: one more (plain)
    insert into another partition, sent beside the LWT and awaited with it. No store can be
    faster than this and index every append; it bounds the ratio at concurrency 1."""
    cluster = cassandra_cluster()
    session = cluster.connect("sahara_es_bench")
    session.execute("CREATE TABLE IF NOT EXISTS raw_lwt (k text PRIMARY KEY, v text)")
    session.execute("CREATE TABLE IF NOT EXISTS raw_index (b int, k text, v text,"
                    " PRIMARY KEY (b, k))")
    insert = session.prepare("INSERT INTO raw_lwt (k, v) VALUES (?, ?) IF NOT EXISTS")
    index = session.prepare("INSERT INTO raw_index (b, k, v) VALUES (?, ?, ?)")

    def op(i: int) -> None:
        key = uuid.uuid4().hex
        entry = session.execute_async(index, (int(time.time()) // 60, key, "x" * 64))
        session.execute(insert, (key, "x" * 64))
        entry.result()

    try:
        return rate(op, ops, 1)
    finally:
        cluster.shutdown()


def raw_sqlite(path: Path, ops: int, concurrency: int) -> float:
    import threading

    local = threading.local()

    def op(i: int) -> None:
        if not hasattr(local, "conn"):
            local.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            local.conn.execute("PRAGMA journal_mode=WAL")
            local.conn.execute("PRAGMA synchronous=NORMAL")
            local.conn.execute("CREATE TABLE IF NOT EXISTS raw (k TEXT PRIMARY KEY, v TEXT)")
        local.conn.execute("BEGIN IMMEDIATE")
        local.conn.execute("INSERT INTO raw (k, v) VALUES (?, ?)", (uuid.uuid4().hex, "x" * 64))
        local.conn.execute("COMMIT")

    return rate(op, ops, concurrency)


ROUNDS = 5
"""Raw and ours are measured in turn, this many times; the figures are the medians, so that a
compaction or a JIT warm-up in one round does not decide a ratio."""


def measure(store: Store, raw: Any, ops: int, prefix: str,
            floor: Any = None) -> dict[str, float]:
    figures: dict[str, float] = {}
    for concurrency in (1, 16):
        rates: dict[str, list[float]] = {"raw": [], "ours": [], "floor": []}
        for _ in range(ROUNDS):
            rates["raw"].append(raw(ops, concurrency))
            rates["ours"].append(rate(
                lambda i: store.append(f"bench-{uuid.uuid4().hex}", event(), 0),
                ops, concurrency))
            if floor is not None and concurrency == 1:
                rates["floor"].append(floor(ops))
        figures[f"{prefix}.raw_insert_per_s.c{concurrency}"] = statistics.median(rates["raw"])
        figures[f"{prefix}.append_new_stream_per_s.c{concurrency}"] = statistics.median(
            rates["ours"])
        figures[f"{prefix}.append_ratio_ours_over_raw.c{concurrency}"] = statistics.median(
            o / r for o, r in zip(rates["ours"], rates["raw"], strict=True))
        if rates["floor"]:
            figures[f"{prefix}.raw_insert_plus_index_write_per_s.c1"] = statistics.median(
                rates["floor"])
            figures[f"{prefix}.best_possible_ratio_with_a_feed.c1"] = statistics.median(
                f / r for f, r in zip(rates["floor"], rates["raw"], strict=True))
    stream = f"bench-{uuid.uuid4().hex}"
    versions = {"v": 0}

    def next_append(i: int) -> None:
        versions["v"] = store.append(stream, event(), versions["v"])

    figures[f"{prefix}.append_existing_stream_per_s.c1"] = rate(next_append, ops, 1)

    batches = max(ops // 10, 10)
    multi_stream = f"bench-{uuid.uuid4().hex}"
    multi = {"v": 0}

    def ten_at_once(i: int) -> None:
        multi["v"] = store.append(multi_stream, [event()[0] for _ in range(10)], multi["v"])

    single_stream = f"bench-{uuid.uuid4().hex}"
    single = {"v": 0}

    def one_of_ten(i: int) -> None:
        single["v"] = store.append(single_stream, event(), single["v"])

    events_per_s_multi = rate(ten_at_once, batches, 1) * 10
    events_per_s_single = rate(one_of_ten, batches * 10, 1)
    figures[f"{prefix}.events_per_s.batch_of_10"] = events_per_s_multi
    figures[f"{prefix}.events_per_s.single_appends"] = events_per_s_single
    figures[f"{prefix}.batch_of_10_speedup"] = events_per_s_multi / events_per_s_single

    resource = f"lease-{uuid.uuid4().hex}"
    lease = store.acquire_lease(resource, "bench", ttl=60)
    figures[f"{prefix}.lease_acquire_per_s"] = rate(
        lambda i: store.acquire_lease(f"lease-{uuid.uuid4().hex}", "bench", ttl=60), ops, 1)
    held = {"lease": lease}

    def renew(i: int) -> None:
        held["lease"] = store.renew_lease(held["lease"], ttl=60)

    figures[f"{prefix}.lease_renew_per_s"] = rate(renew, ops, 1)
    key = f"claim-{uuid.uuid4().hex}"
    store.define_claim(key, capacity=10**9)
    figures[f"{prefix}.claim_per_s.c1"] = rate(
        lambda i: store.claim_with_retry(key, f"h{i}", 1), ops, 1)
    key16 = f"claim-{uuid.uuid4().hex}"
    store.define_claim(key16, capacity=10**9)
    figures[f"{prefix}.claim_per_s.c16_one_key"] = rate(
        lambda i: store.claim_with_retry(key16, f"h{i}", 1, attempts=10_000), ops, 16)
    return figures


def with_relay_running(store: Store, ops: int, *, pinned: bool) -> dict[str, float]:
    """Raw and ours at c16 while a consumer process tails the feed (its relay copying every
    append into it); ``pinned``: this process on CPU 0, the consumer on CPU 1."""
    suffix = "c16_relay_running" + ("_pinned" if pinned else "")
    before = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        stop, out = folder / "stop", folder / "consumer.jsonl"
        spec = feedchaos.ConsumerSpec(BENCH_CASSANDRA_URL, str(out), "bench-",
                                      feedchaos.feed_end(store), str(stop), limit=500,
                                      project=False)
        consumer = feedchaos.spawn("consumer", feedchaos.save_spec(spec, folder / "c.json"),
                                   cpus="1" if pinned else None)
        try:
            feedchaos._wait_for(out, "ready", consumer)
            if pinned:
                os.sched_setaffinity(0, {0})
            rates: dict[str, list[float]] = {"raw": [], "ours": []}
            for _ in range(ROUNDS):
                rates["raw"].append(raw_cassandra(ops, 16))
                rates["ours"].append(rate(
                    lambda i: store.append(f"bench-{uuid.uuid4().hex}", event(), 0), ops, 16))
            os.sched_setaffinity(0, before)
            time.sleep(1.0)
            stop.touch()
            consumer.wait(timeout=60)
        finally:
            os.sched_setaffinity(0, before)
            if consumer.poll() is None:
                consumer.kill()
        delivered = len(feedchaos.deliveries(out))
    return {
        f"cassandra.raw_insert_per_s.{suffix}": statistics.median(rates["raw"]),
        f"cassandra.append_new_stream_per_s.{suffix}": statistics.median(rates["ours"]),
        f"cassandra.append_ratio_ours_over_raw.{suffix}": statistics.median(
            o / r for o, r in zip(rates["ours"], rates["raw"], strict=True)),
        f"cassandra.relay_delivered.{suffix}": float(delivered),
    }


def long_stream(store: Store, prefix: str, length: int = 50_000) -> dict[str, float]:
    """Read a 50 000-event stream whole, and rebuild it with and without its snapshot."""
    stream = f"cluster-{uuid.uuid4().hex}"
    counter = Counter(stream)
    while counter.version < length:
        repository.save(store, counter, events(100))
    repository.save(store, counter, events(7))
    started = time.perf_counter()
    count = sum(1 for _ in store.read(stream))
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    full = Counter(stream)
    for event in store.read(stream):
        full.fold(event)
    full_s = time.perf_counter() - started
    started = time.perf_counter()
    rebuilt = repository.load(store, Counter, stream)
    snap_s = time.perf_counter() - started
    assert rebuilt.total == full.total and count == length + 7
    return {
        f"{prefix}.long_stream.read_events_per_s": count / read_s,
        f"{prefix}.long_stream.rebuild_without_snapshot_ms": full_s * 1000,
        f"{prefix}.long_stream.rebuild_from_snapshot_ms": snap_s * 1000,
        f"{prefix}.long_stream.snapshot_speedup_ratio": full_s / snap_s,
    }


def main() -> None:
    args = arguments(__doc__ or "")
    figures: dict[str, Any] = {}
    notes = []
    with tempfile.TemporaryDirectory() as folder:
        sqlite_store = open_store(f"sqlite:///{folder}/bench.db", upgrade=True)
        figures.update(measure(sqlite_store, lambda o, c: raw_sqlite(Path(folder) / "raw.db", o, c),
                               args.ops, "sqlite"))
        figures.update(long_stream(sqlite_store, "sqlite"))
        sqlite_store.close()
    if not args.sqlite_only:
        drop_cassandra_keyspace("sahara_es_bench")  # no backlog of earlier runs to relay
        store = open_store(BENCH_CASSANDRA_URL, upgrade=True)
        described = store.describe()
        figures["cassandra.version"] = described["cassandra_version"]
        figures["cassandra.paxos_variant"] = described["paxos_variant"]
        notes.append(f"Cassandra {described['cassandra_version']}, paxos_variant="
                     f"{described['paxos_variant']}, single node, ownership serial="
                     f"{described['ownership_serial']}, claims serial={described['claims_serial']}")
        figures.update(measure(store, raw_cassandra, args.ops, "cassandra",
                               floor=raw_cassandra_with_index_write))
        for pinned in (False, True):
            figures.update(with_relay_running(store, args.ops, pinned=pinned))
        figures.update(long_stream(store, "cassandra"))
        store.close()
    def unit(name: str) -> str:
        if "ratio" in name or "speedup" in name:
            return "ratio"
        if "relay_delivered" in name:
            return "events"
        return "ms" if name.endswith("_ms") else "per s"

    rows = [(name, unit(name), value) for name, value in figures.items()
            if isinstance(value, float)]
    report("store append / lease / claim throughput", rows, figures, args.json, notes)


if __name__ == "__main__":
    main()
