"""Chaos for the global feed, with real processes on the real Cassandra node.

The pieces ``tests/integration/test_feed_never_skips.py`` and ``benchmarks/replay.py`` put
together:

- ``writer``: a process appending to many streams from several threads for a bounded time,
  recording every append it sends and the outcome ``append()`` reported (one JSON line each,
  flushed as written, so a writer killed mid-append leaves its records). Its store's clock may
  be shifted, its steps (``CassandraStore.on_step``) paused with SIGSTOP or ended with
  ``os._exit``, and its connections routed through a ``ReplyDropper``.
- ``relay``: a process running the feed relay pass after pass, with the same faults.
- ``consumer``: a process tailing ``read_feed`` from a checkpoint, recording every delivery,
  and applying a small projection (``VersionsPerStream``) through a ``ProjectionRunner``.
- ``ReplyDropper``: a TCP proxy between a store and the node that, when armed, forwards the
  next request and closes the client's connection before the reply reaches it.
- ``tally`` and ``check_outcomes``: the counts (written, seen, skipped, duplicated, out of
  order) against the ground truth, every stream read directly; and every reported outcome
  against what the stream holds.

Run one role by hand with ``python -m tests.feedchaos ROLE SPEC.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sahara_es.events import NewEvent, RecordedEvent
from sahara_es.projections.base import Doc, Projection, ProjectionRunner, new_generation
from sahara_es.store import parse_store_url
from sahara_es.store.errors import OutcomeUnknown, StoreError

REPO = Path(__file__).resolve().parent.parent

# The steps the store names through ``on_step`` (doc: /work/notes/feed-design.md).
BEFORE_LWT = "append.before_lwt"
"""An append is planned and about to send its LWT."""
AFTER_LWT = "append.after_lwt"
"""The LWT's reply or failure is in, and the outcome not settled yet."""
RELAY_AFTER_READ = "relay.after_read"
"""The relay read marks and events, and has not appended them to the feed yet."""
RELAY_AFTER_FEED_APPEND = "relay.after_feed_append"
"""A feed append of the relay committed; its marks are not cleared yet."""

KILLED = 86
"""The exit status of a process a fault ended (``os._exit``), as a crash would."""


# -- faults ----------------------------------------------------------------------------------

@dataclass
class Fault:
    """What happens the ``at``-th times (1-based, counted per process) a step is reached.

    ``pause``: the whole process is stopped (SIGSTOP) for ``seconds``, as a long GC pause or
    a frozen VM would stop it; ``also`` names a later step of the same append (the same
    thread) where it is stopped once more. ``kill``: ``os._exit``. ``drop_reply``: the next
    request through the process's ``ReplyDropper`` reaches the node, its reply does not.
    """

    step: str
    at: list[int]
    action: str = "pause"
    seconds: float = 3.0
    also: str | None = None


class Faults:
    """The ``on_step`` hook of a process: counts each step and applies its faults."""

    def __init__(self, faults: Iterable[Fault], dropper: ReplyDropper | None = None) -> None:
        self.faults = list(faults)
        self.dropper = dropper
        self.reached: dict[str, int] = {}
        self.applied: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.local = threading.local()

    def __call__(self, step: str) -> None:
        if getattr(self.local, "again", None) == step:
            self.local.again = None
            self._apply(Fault(step, [], "pause", self.local.again_seconds), step, -1)
            return
        with self.lock:
            count = self.reached[step] = self.reached.get(step, 0) + 1
            due = [f for f in self.faults if f.step == step and count in f.at]
        for fault in due:
            if fault.also:
                self.local.again, self.local.again_seconds = fault.also, fault.seconds
            self._apply(fault, step, count)

    def _apply(self, fault: Fault, step: str, count: int) -> None:
        self.applied.append({"step": step, "at": count, "action": fault.action,
                             "t": time.time()})
        if fault.action == "pause":
            stop_myself(fault.seconds)
        elif fault.action == "kill":
            os._exit(KILLED)
        elif fault.action == "drop_reply":
            assert self.dropper is not None, "drop_reply needs the writer's proxy"
            self.dropper.arm()
        else:
            raise ValueError(f"unknown fault action {fault.action!r}")


def stop_myself(seconds: float) -> None:
    """SIGSTOP this whole process (every thread, the driver's too); a helper wakes it."""
    subprocess.Popen(["sh", "-c", f"sleep {seconds}; kill -CONT {os.getpid()}"],
                     start_new_session=True)
    os.kill(os.getpid(), signal.SIGSTOP)


# -- the TCP proxy ---------------------------------------------------------------------------

class ReplyDropper:
    """A TCP proxy to the node that, when armed, loses the reply of the next request.

    The next chunk a client sends after ``arm()`` is forwarded to the node; the client's
    connection is then closed at once, and the node's side is held open (what it answers is
    swallowed) for ``hold`` seconds, long enough for the request to finish there, then closed.
    So the request reaches the node and runs, and its sender only sees its connection drop.
    """

    def __init__(self, node: tuple[str, int], *, hold: float = 0.5) -> None:
        self.node = node
        self.hold = hold
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.accepted = 0
        self.upstream_ports: set[int] = set()
        """Local ports of the proxy's own connections to the node, while open."""
        self.dropped = 0
        self._armed = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def arm(self) -> None:
        with self._lock:
            self._armed = True

    def _take_arm(self) -> bool:
        with self._lock:
            armed, self._armed = self._armed, False
            return armed

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.node)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self.upstream_ports.add(upstream.getsockname()[1])
            state = {"dropping": False}
            threading.Thread(target=self._up, args=(client, upstream, state),
                             daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, state),
                             daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket,
            state: dict[str, bool]) -> None:
        try:
            while data := client.recv(65536):
                drop = self._take_arm()
                if drop:
                    state["dropping"] = True
                upstream.sendall(data)
                if drop:
                    with self._lock:
                        self.dropped += 1
                    _close(client)
                    threading.Timer(self.hold, self._close_upstream, (upstream,)).start()
                    return
        except OSError:
            pass
        _close(client)
        if not state["dropping"]:
            self._close_upstream(upstream)

    def _down(self, upstream: socket.socket, client: socket.socket,
              state: dict[str, bool]) -> None:
        try:
            while data := upstream.recv(65536):
                if not state["dropping"]:
                    client.sendall(data)
        except OSError:
            pass
        _close(client)
        if not state["dropping"]:
            self._close_upstream(upstream)

    def _close_upstream(self, upstream: socket.socket) -> None:
        with self._lock:
            if upstream.fileno() == -1:
                return
            self.upstream_ports.discard(upstream.getsockname()[1])
        _close(upstream)

    def direct_connections(self) -> int:
        """This process's connections to the node that do not come through the proxy."""
        import psutil  # type: ignore[import-untyped]

        to_node = [c.laddr.port for c in psutil.Process().net_connections("tcp")
                   if c.raddr and (c.raddr.ip, c.raddr.port) == self.node
                   and c.status == psutil.CONN_ESTABLISHED]
        with self._lock:
            return len(set(to_node) - self.upstream_ports)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def proxied_store_class(address: tuple[str, int]) -> type[Any]:
    """A ``CassandraStore`` whose driver connects through ``address`` (every connection: the
    one node's own address, learned from system.local, is not used)."""
    from sahara_es.store.cassandra import CassandraStore

    class ThroughProxy(CassandraStore):
        def _cluster_options(self) -> dict[str, Any]:
            return {**super()._cluster_options(), "contact_points": [address[0]],
                    "port": address[1]}

    return ThroughProxy


# -- specs -----------------------------------------------------------------------------------

@dataclass
class WriterSpec:
    name: str
    url: str
    streams: list[str]
    seconds: float
    out: str
    threads: int = 4
    clock_shift: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    proxy: bool = False
    max_events: int = 3
    """Events per append: 1 to this many."""
    rate: float | None = None
    """Appends per second, all threads together (None: as fast as they go)."""


@dataclass
class RelaySpec:
    url: str
    out: str
    seconds: float
    faults: list[Fault] = field(default_factory=list)
    ttl: float = 3.0
    """Its relay lease's TTL: how long after it dies another process's relay takes over."""


@dataclass
class ConsumerSpec:
    url: str
    out: str
    prefix: str
    """Only events of streams whose id starts with this are recorded and projected."""
    after: str | None
    stop: str
    """A file: once it exists, the consumer finishes its projection and exits."""
    limit: int = 200
    projection_every: float = 0.5
    idle_sleep: float = 0.01
    project: bool = True
    """Apply the projection as it reads (the benchmarks only tail the feed)."""


def save_spec(spec: Any, path: Path) -> Path:
    path.write_text(json.dumps(asdict(spec)))
    return path


def _load(kind: type[Any], path: str) -> Any:
    raw = json.loads(Path(path).read_text())
    if "faults" in raw:
        raw["faults"] = [Fault(**f) for f in raw["faults"]]
    return kind(**raw)


def spawn(role: str, spec_path: Path, *, cpus: str | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m tests.feedchaos ROLE SPEC`` (pinned to ``cpus`` with taskset)."""
    command = [sys.executable, "-m", "tests.feedchaos", role, str(spec_path)]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    return subprocess.Popen(command, cwd=REPO)


# -- writer ----------------------------------------------------------------------------------

class Records:
    """One JSON line per record, written through at once (a killed process keeps them)."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
        self.lock = threading.Lock()

    def write(self, record: Any) -> None:
        line = json.dumps(record)
        with self.lock:
            self.file.write(line + "\n")


def read_records(path: Path) -> list[Any]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):  # a killed process's last line
            out.append(json.loads(line))
    return out


def open_cassandra(url: str, *, clock_shift: float = 0.0,
                   on_step: Callable[[str], None] | None = None,
                   through: tuple[str, int] | None = None) -> Any:
    """A store for ``url``; on Cassandra with the clock shifted, the steps hooked, the
    driver routed through a proxy (a SQLite store has none of those)."""
    from sahara_es.store import open_store
    from sahara_es.store.cassandra import CassandraStore

    if url.startswith("sqlite:"):
        return open_store(url)
    config = parse_store_url(url)[1]["config"]
    kind = proxied_store_class(through) if through else CassandraStore
    shift = clock_shift
    return kind(config, clock=(lambda: time.time() + shift) if shift else time.time,
                on_step=on_step)


def writer(spec: WriterSpec) -> None:
    records = Records(spec.out)
    dropper = None
    if spec.proxy:
        config = parse_store_url(spec.url)[1]["config"]
        dropper = ReplyDropper((config.contact_points[0], config.port))
    faults = Faults(spec.faults, dropper)
    store = open_cassandra(spec.url, clock_shift=spec.clock_shift, on_step=faults,
                           through=dropper.address if dropper else None)
    records.write({"ready": spec.name, "pid": os.getpid()})
    known: dict[str, int] = {}
    end = time.time() + spec.seconds
    rng = random.Random(spec.name)

    def run(thread: int) -> None:
        local = random.Random(rng.random())
        interval = spec.threads / spec.rate if spec.rate else 0.0
        due = time.monotonic() + local.random() * interval
        while time.time() < end:
            if interval:
                time.sleep(max(0.0, due - time.monotonic()))
                due += interval
            stream = local.choice(spec.streams)
            expected = known.get(stream, 0)
            batch = [NewEvent(type="ChaosHappened",
                              data={"writer": spec.name, "thread": thread})
                     for _ in range(local.randint(1, spec.max_events))]
            ids = [str(e.event_id) for e in batch]
            records.write({"sent": stream, "expected": expected, "ids": ids})
            started = time.monotonic()
            try:
                version = store.append(stream, batch, expected)
            except StoreError as error:
                outcome: dict[str, Any] = {"error": type(error).__name__,
                                           "unknown": isinstance(error, OutcomeUnknown)}
                actual = getattr(error, "actual_version", None)
                known[stream] = actual if actual is not None else _version(store, stream)
            except Exception as error:  # a raw driver error escaping is a finding
                outcome = {"error": type(error).__name__, "raw": True,
                           "detail": "".join(traceback.format_exception_only(error))[:300]}
                known[stream] = _version(store, stream)
            else:
                outcome = {"version": version}
                known[stream] = version
            records.write({"outcome": ids[0], "at": time.time(),
                           "took": time.monotonic() - started, **outcome})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(spec.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary: dict[str, Any] = {"done": spec.name, "faults": faults.applied}
    if dropper is not None:
        summary.update(proxy_accepted=dropper.accepted, proxy_dropped=dropper.dropped,
                       direct_connections=dropper.direct_connections())
    records.write(summary)
    store.close()


def _version(store: Any, stream: str) -> int:
    """The stream's version, asked until the store answers (raw driver errors included:
    they are the store's findings, recorded with the append that raised them)."""
    for _ in range(40):
        try:
            return int(store.stream_version(stream))
        except Exception:
            time.sleep(0.5)
    return 0


# -- relay -----------------------------------------------------------------------------------

def relay(spec: RelaySpec) -> None:
    """Relay passes for ``seconds`` (the lease taken when free), with faults at its steps."""
    from sahara_es.store.cassandra_feed import FeedRelay

    records = Records(spec.out)
    faults = Faults(spec.faults)
    store = open_cassandra(spec.url, on_step=faults)
    store._feed_relay = FeedRelay(store, ttl=spec.ttl)
    records.write({"ready": "relay", "pid": os.getpid(), "owner": store.feed_relay.owner})
    # Its time counts from when it first holds the lease: a relay of an earlier run (a killed
    # consumer's, say) may hold it until its TTL runs out.
    waited_until = time.time() + 30
    while not store.feed_relay.holding and time.time() < waited_until:
        with contextlib.suppress(StoreError):
            store.feed_relay.pass_once()
        time.sleep(0.05)
    end = time.time() + spec.seconds
    relayed = 0
    errors: dict[str, int] = {}
    held = False
    longest, losses = 0.0, 0
    while time.time() < end:
        started = time.monotonic()
        try:
            moved = store.feed_relay.pass_once()
        except StoreError as error:  # LeaseLost after a pause past the lease, say
            errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
            moved = 0
        longest = max(longest, time.monotonic() - started)
        if store.feed_relay.holding and not held:
            records.write({"holding": store.feed_relay.owner, "t": time.time()})
        losses += held and not store.feed_relay.holding
        held = store.feed_relay.holding
        relayed += moved
        if not moved:
            time.sleep(0.02)
    store.feed_relay.stop()
    records.write({"done": "relay", "relayed": relayed, "errors": errors,
                   "faults": faults.applied, "longest_pass": longest, "leases_lost": losses})
    store.close()


# -- consumer and its projection -------------------------------------------------------------

class VersionsPerStream(Projection):
    """Per stream of the run: how many of its events the projection applied, and the last."""

    name: ClassVar[str] = "feedchaos"

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def key(self, event: RecordedEvent) -> str | None:
        return event.stream_id if event.stream_id.startswith(self.prefix) else None

    def evolve(self, doc: Doc | None, event: RecordedEvent) -> Doc | None:
        return {"count": (doc or {}).get("count", 0) + 1, "last": event.version}


def consumer(spec: ConsumerSpec) -> None:
    from sahara_es.store import open_store

    records = Records(spec.out)
    store = open_store(spec.url)
    projection = VersionsPerStream(spec.prefix)
    generation = new_generation(None)
    if spec.after is not None:
        store.save_checkpoint(projection.name, generation, spec.after)
    runner = ProjectionRunner(store, projection, generation)
    records.write({"ready": "consumer", "pid": os.getpid(), "generation": generation})
    position = spec.after
    projected = time.time()
    while True:
        stopping = Path(spec.stop).exists()
        batch = store.read_feed(position, limit=spec.limit)
        now = time.time()
        for event in batch:
            if event.stream_id.startswith(spec.prefix):
                records.write([event.stream_id, event.version, str(event.event_id),
                               event.position, now])
        if batch:
            position = batch[-1].position
            records.write({"checkpoint": position})
        if spec.project and (now - projected > spec.projection_every or stopping):
            runner.catch_up()
            projected = time.time()
        if stopping and not batch:
            break
        if not batch:
            time.sleep(spec.idle_sleep)
    records.write({"done": "consumer", "position": position})
    store.close()


# -- the counting ----------------------------------------------------------------------------

Key = tuple[str, int]


@dataclass
class Counts:
    written: int = 0
    seen: int = 0
    skipped: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    """First deliveries of an event after a later event of its stream."""
    wrong: int = 0
    """Deliveries naming an event id the stream does not hold at that version."""
    positions_not_increasing: int = 0
    last_event_missing: int = 0
    """Streams whose last event was never delivered."""
    examples: list[Any] = field(default_factory=list)


def ground_truth(store: Any, streams: Iterable[str]) -> dict[Key, str]:
    """(stream, version) -> event id, every stream read directly."""
    return {(s, e.version): str(e.event_id) for s in streams for e in store.read(s)}


def deliveries(path: Path) -> list[list[Any]]:
    return [r for r in read_records(path) if isinstance(r, list)]


def tally(truth: dict[Key, str], delivered: list[list[Any]]) -> Counts:
    counts = Counts(written=len(truth))
    seen: set[Key] = set()
    newest: dict[str, int] = {}
    last_position = -1
    for stream, version, event_id, position, _ in delivered:
        key = (stream, version)
        if truth.get(key) != event_id:
            counts.wrong += 1
            continue
        try:
            numeric = int(position)
        except ValueError:
            numeric = last_position + 1
        if numeric <= last_position:
            counts.positions_not_increasing += 1
        last_position = max(last_position, numeric)
        if key in seen:
            counts.duplicated += 1
            continue
        seen.add(key)
        if version < newest.get(stream, 0):
            counts.out_of_order += 1
        newest[stream] = max(newest.get(stream, 0), version)
    counts.seen = len(seen)
    missing = sorted(set(truth) - seen)
    counts.skipped = len(missing)
    counts.examples = missing[:10]
    last: dict[str, int] = {}
    for stream, version in truth:
        last[stream] = max(last.get(stream, 0), version)
    counts.last_event_missing = sum((s, v) not in seen for s, v in last.items())
    return counts


@dataclass
class Outcomes:
    succeeded: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    unknown: int = 0
    """Appends reported ``OutcomeUnknown``, or in flight when their writer was killed."""
    mismatches: list[Any] = field(default_factory=list)
    """Reported outcomes the streams contradict."""


def check_outcomes(records: list[Any], truth: dict[Key, str]) -> Outcomes:
    where = {event_id: key for key, event_id in truth.items()}
    sent = {r["ids"][0]: r for r in records if isinstance(r, dict) and "sent" in r}
    result = Outcomes()
    reported = set()
    for record in records:
        if not isinstance(record, dict) or "outcome" not in record:
            continue
        append = sent[record["outcome"]]
        reported.add(record["outcome"])
        stream, expected, ids = append["sent"], append["expected"], append["ids"]
        stored = [where.get(i) for i in ids]
        if "version" in record:
            result.succeeded += 1
            wanted = [(stream, expected + n + 1) for n in range(len(ids))]
            if stored != wanted or record["version"] != expected + len(ids):
                result.mismatches.append({"reported": record, "append": append,
                                          "stored_at": stored})
        elif record.get("unknown"):
            result.unknown += 1
        else:
            name = record["error"]
            result.failed[name] = result.failed.get(name, 0) + 1
            if any(stored) or record.get("raw"):
                result.mismatches.append({"reported": record, "append": append,
                                          "stored_at": stored})
    result.unknown += len(set(sent) - reported)
    return result


# -- a whole run -----------------------------------------------------------------------------

@dataclass
class WriterPlan:
    """One writer process of a run: its clock's shift, its faults, whether its connections go
    through a ``ReplyDropper``."""

    clock_shift: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    proxy: bool = False


@dataclass
class Run:
    counts: Counts
    outcomes: Outcomes
    projection_wrong: list[Any]
    """Streams whose projected row is not ``{"count": v, "last": v}``, v its version."""
    writers: list[dict[str, Any]]
    """What each writer said when done (its faults applied, its proxy's counts)."""
    relay: dict[str, Any] | None
    exit_codes: list[int | None]

    def summary(self) -> str:
        c, o = self.counts, self.outcomes
        return (f"written {c.written}, seen {c.seen}, skipped {c.skipped}, duplicated"
                f" {c.duplicated}, out of order {c.out_of_order}, wrong {c.wrong}, last"
                f" events missing {c.last_event_missing}; appends: {o.succeeded} succeeded,"
                f" failed {o.failed}, unknown {o.unknown}, mismatched {len(o.mismatches)};"
                f" projection rows wrong {len(self.projection_wrong)}")


def with_params(url: str, **params: str) -> str:
    extra = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{extra}"


def feed_end(store: Any) -> str | None:
    """The position after the newest event of the feed (a new consumer's checkpoint)."""
    from sahara_es.store.cassandra_feed import FEED_STREAM

    if not hasattr(store, "feed_relay"):  # SQLite: its feed is its log
        page = store.read_feed(None, limit=1_000_000)
        return page[-1].position if page else None
    return str(store.stream_version(FEED_STREAM))


def _wait_for(path: Path, key: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for record in read_records(path):
            if isinstance(record, dict) and key in record:
                return record
        if proc.poll() is not None:
            raise AssertionError(f"{path.name}: the process exited with {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"{path.name}: no {key!r} within {timeout} s")


def run_chaos(store: Any, url: str, folder: Path, writers: list[WriterPlan], *,
              streams: int = 300, seconds: float = 8.0, threads: int = 4,
              consumer_params: dict[str, str] | None = None,
              relay_faults: list[Fault] | None = None, relay_ttl: float = 3.0,
              settle: float = 30.0) -> Run:
    """Writers for ``seconds``, a consumer (its process relays too) tailing the feed from its
    end, and, with ``relay_faults``, a relay process that holds the lease first; then the
    counts against every stream read directly. ``store`` reads the truth (no relay)."""
    prefix = new_prefix()
    names = [f"{prefix}{n}" for n in range(streams)]
    procs: list[subprocess.Popen[bytes]] = []
    relay_out = folder / "relay.jsonl"
    relay_proc = None
    try:
        if relay_faults is not None:
            spec = RelaySpec(url, str(relay_out), seconds + 5, relay_faults, relay_ttl)
            relay_proc = spawn("relay", save_spec(spec, folder / "relay.json"))
            _wait_for(relay_out, "holding", relay_proc)
        consumer_out, stop = folder / "consumer.jsonl", folder / "stop"
        consumer_spec = ConsumerSpec(with_params(url, **(consumer_params or {})),
                                     str(consumer_out), prefix, feed_end(store), str(stop))
        consumer_proc = spawn("consumer", save_spec(consumer_spec, folder / "consumer.json"))
        procs.append(consumer_proc)
        ready = _wait_for(consumer_out, "ready", consumer_proc)
        outs = [folder / f"writer-{i}.jsonl" for i in range(len(writers))]
        writer_procs = []
        for i, (plan, out) in enumerate(zip(writers, outs, strict=True)):
            spec_w = WriterSpec(f"w{i}", with_params(url, feed_relay="off"), names, seconds,
                                str(out), threads, plan.clock_shift, plan.faults, plan.proxy)
            writer_procs.append(spawn("writer", save_spec(spec_w, folder / f"w{i}.json")))
        procs.extend(writer_procs)
        for proc in writer_procs:
            proc.wait(timeout=seconds + 120)
        truth = ground_truth(store, names)
        deadline = time.time() + settle
        while time.time() < deadline:
            seen = {(d[0], d[1]) for d in deliveries(consumer_out)}
            if set(truth) <= seen:
                break
            assert consumer_proc.poll() is None, "the consumer died"
            time.sleep(0.2)
        stop.touch()
        consumer_proc.wait(timeout=120)
        if relay_proc is not None:
            relay_proc.wait(timeout=seconds + 60)
    finally:
        for proc in [*procs, *([relay_proc] if relay_proc else [])]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    records = [r for out in outs for r in read_records(out)]
    rows = dict(store.scan_rows(VersionsPerStream.name, ready["generation"], prefix=prefix))
    last: dict[str, int] = {}
    for stream, version in truth:
        last[stream] = max(last.get(stream, 0), version)
    projection_wrong = [(s, rows.get(s)) for s, v in sorted(last.items())
                        if rows.get(s) is None
                        or (rows[s]["count"], rows[s]["last"]) != (v, v)]
    relay_records = read_records(relay_out)
    return Run(
        counts=tally(truth, deliveries(consumer_out)),
        outcomes=check_outcomes(records, truth),
        projection_wrong=projection_wrong,
        writers=[r for r in records if isinstance(r, dict) and "done" in r],
        relay=next((r for r in relay_records if isinstance(r, dict) and "done" in r), None),
        exit_codes=[p.returncode for p in procs],
    )


# -- entry point -----------------------------------------------------------------------------

ROLES: dict[str, tuple[type[Any], Callable[[Any], None]]] = {
    "writer": (WriterSpec, writer),
    "relay": (RelaySpec, relay),
    "consumer": (ConsumerSpec, consumer),
}


def main(argv: list[str]) -> None:
    kind, run = ROLES[argv[0]]
    run(_load(kind, argv[1]))


def new_prefix() -> str:
    return f"chaos{uuid.uuid4().hex[:10]}-"


if __name__ == "__main__":
    main(sys.argv[1:])
