"""GET p99 (show and list) of several ``sahara-es api`` processes behind HAProxy, idle and
while two engines are saturated with provisioning work, at a fixed offered rate; on SQLite
and on Cassandra; with the API side and the engine side pinned to a core each, and unpinned.

    python benchmarks/services.py [--json] [--quick] [--sqlite-only] [--rate R]
                                  [--duration S] [--processes N] [--clients C] [--pin-store]

For each store and each placement (``pinned``, ``unpinned``), on a fresh store (a new SQLite
file; the keyspace ``sahara_es_bench_services`` dropped and made again):

1. ``--processes`` ``sahara-es api`` processes (GETs answered from their read models in
   memory, doc/api-processes.rst) behind HAProxy run with the configuration
   ``sahara-es haproxy-config`` generates, a ``sahara-es projector`` process beside them;
   ~``seed`` data sources are made through HAProxy.
2. Two ``sahara-es engine`` processes start many ``test.noops`` workflows (tasks whose
   start is durable: the engines' heaviest write load).
3. ``GET /v2/data-sources/<id>`` and ``GET /v2/data-sources?limit=50`` in turn are offered at
   ``--rate`` requests per second by ``--clients`` threads, each on its own keep-alive
   connection; latency counted from when each request was due (no coordinated omission), to
   the answer read. Meanwhile idle and saturated windows of ``--window`` seconds alternate
   (``Alternation``): in an idle one the engines and the projector are stopped
   (``SIGSTOP``), in a saturated one they run; about ``--duration`` seconds are measured of
   each phase, so both see the same machine whatever else the host runs meanwhile. The
   engines must still be writing at the end.

``pinned``: the API processes, HAProxy and this process's client threads on CPU 0
(``taskset``, ``sched_setaffinity``); the engines, the projector and (SQLite) the store they
write on CPU 1. The Cassandra node is a shared service: it is moved to CPU 1 (every thread
of its JVM, and back afterwards) only with ``--pin-store``, else it runs wherever its
threads are scheduled (``<store>.pinned.store_pinned`` says which). On Cassandra the API
processes' store URL says ``feed_relay=off``: they read the feed, the engine side relays
events into it.
``unpinned``: the same processes, placed by the kernel. The goal: saturated GET p99 at most
1.5x idle, pinned, on both stores.

Beside the latencies, each phase says the CPU the API side used (``api_side_cpu``: the API
processes and HAProxy, in CPUs) and how busy CPU 0 was whoever used it (``cpu0_busy``): on a
machine shared with other work, CPU 0 much busier than the API side needs is load from
elsewhere, which pinning the engines to CPU 1 pushes onto CPU 0.

If ``benchmarks/wakeups.py`` is there, its ``run(quick=..., backends=...)`` (cast vs sweep
latency, engine scaling) is run too and its figures are merged in under its own keys.
Needs HAProxy (``/usr/sbin/haproxy``), ``taskset`` and two CPUs; the Cassandra node
(``tools/cassandra start``) unless ``--sqlite-only``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.table import Table

from benchmarks import common
from benchmarks.api import Measured, Operation, drive, get_mixed, percentile_ms, seed
from benchmarks.common import output, print_notes, scenario_parser, wide_console
from sahara_es.engine import start_workflow
from sahara_es.engine.engine import WORKFLOW_PREFIX
from sahara_es.store import Store
from tests.engines import ROOT, engine_alive, wait_until
from tests.factories import CASSANDRA_HOST
from tests.integration.test_haproxy import ApiProcess, Balancer

KEYSPACE = "sahara_es_bench_services"
CASSANDRA_URL = f"cassandra://{CASSANDRA_HOST}:9042/{KEYSPACE}"
GOAL = 1.5
"""Saturated GET p99 over idle GET p99, pinned, on each store."""
ENGINES = 2
ENGINE_CONCURRENCY = 8
API_CPU, ENGINE_CPU = "0", "1"
PLACEMENTS = ("pinned", "unpinned")
SETTLE = 0.3
"""Seconds at the start of each idle or saturated window that count for neither phase."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    quick: bool
    rate: float
    duration: float
    window: float
    processes: int
    clients: int
    seed: int
    workflows: int
    tasks_per_workflow: int
    pin_store: bool


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    return Settings(quick=quick, rate=args.rate, processes=args.processes,
                    clients=args.clients,
                    duration=args.duration or (5.0 if quick else 30.0),
                    window=args.window,
                    seed=30 if quick else 200,
                    workflows=24 if quick else 64,
                    tasks_per_workflow=400 if quick else 1000, pin_store=args.pin_store)


# -- the processes ----------------------------------------------------------------------------

def pinned_command(cpus: str, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


class Background:
    """A ``sahara-es`` command in the background (engines, the projector)."""

    def __init__(self, url: str, args: list[str], log: Path, cpus: str) -> None:
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            pinned_command(cpus, [sys.executable, "-m", "sahara_es.cli", "--store", url,
                                  *args]),
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


@contextlib.contextmanager
def running(item: Any) -> Iterator[Any]:
    try:
        yield item
    finally:
        item.stop()


@contextlib.contextmanager
def client_on(cpus: str) -> Iterator[None]:
    """This thread, and the client threads it starts, on ``cpus`` (all CPUs if empty)."""
    before = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


CASSANDRA_PIDFILE = ROOT / ".cache" / "cassandra-nodes" / "node1" / "cassandra.pid"


@contextlib.contextmanager
def store_on(backend: str, cpus: str) -> Iterator[str]:
    """With ``--pin-store``: the Cassandra node's threads (``tools/cassandra``'s node 1) on
    ``cpus`` for the while, then back on the CPUs they had; what was done, for the notes."""
    if backend != "cassandra" or not cpus:
        yield ""
        return
    pid = int(CASSANDRA_PIDFILE.read_text().strip())
    before = ",".join(str(c) for c in sorted(os.sched_getaffinity(pid)))
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        yield f"the Cassandra node (pid {pid}) was pinned to CPU {cpus}, then put back"
    finally:
        subprocess.run(["taskset", "-a", "-p", "-c", before, str(pid)], check=True,
                       stdout=subprocess.DEVNULL)


class CpuUse:
    """CPU used over the windows counted: by ``pids`` (the API processes and HAProxy: their
    threads included) and on CPU 0 by anything at all (``/proc/stat``), each in CPUs (1.0:
    one CPU busy throughout). CPU 0 far busier than the API side is load from elsewhere
    competing with it."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.seconds = self._ticks_used = 0.0
        """How long was counted."""
        self._cpu0_busy = self._cpu0_total = 0

    @property
    def processes(self) -> float:
        return self._ticks_used / os.sysconf("SC_CLK_TCK") / max(self.seconds, 1e-9)

    @property
    def cpu0(self) -> float:
        return self._cpu0_busy / max(1, self._cpu0_total)

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        began, ticks, (busy, total) = time.monotonic(), self._ticks(), self._cpu0()
        try:
            yield
        finally:
            self.seconds += time.monotonic() - began
            self._ticks_used += self._ticks() - ticks
            busy_now, total_now = self._cpu0()
            self._cpu0_busy += busy_now - busy
            self._cpu0_total += total_now - total

    def _ticks(self) -> int:
        used = 0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                used += int(fields[11]) + int(fields[12])  # utime, stime
        return used

    @staticmethod
    def _cpu0() -> tuple[int, int]:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu0 "):
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + values[4]  # idle, iowait
                return sum(values) - idle, sum(values)
        return 0, 1


PHASES = ("idle", "saturated")
SETTLING = "settling"


class Alternation:
    """Idle and saturated windows in turn over one run of the clients, so that both phases
    see the same machine: the host's own load comes and goes over minutes (the idle GET p99
    of two back-to-back idle phases was 5.7 and 17.5 ms), and phases run one after the other
    measured that more than the engines.

    An idle window stops the engine side (the engines and the projector: ``SIGSTOP``), a
    saturated one lets it go on (``SIGCONT``); the first ``settle`` seconds of each window,
    while the API processes' tails apply what the engines wrote up to the switch, count for
    neither phase. A request counts for the phase of the window it is sent in."""

    def __init__(self, engine_side: list[int], api_side: list[int], *, window: float,
                 settle: float) -> None:
        self.engine_side = engine_side
        self.window = window
        self.settle = settle
        self.phase = SETTLING
        self.cpu = {phase: CpuUse(api_side) for phase in PHASES}
        """The API side's CPU in each phase's measured time (``seconds``: how long)."""

    def labelled(self, op: Operation) -> Operation:
        def labelled_op(connection: Any, n: int, i: int) -> tuple[str, bool]:
            phase = self.phase
            label, ok = op(connection, n, i)
            return f"{phase}:{label}", ok

        return labelled_op

    def run(self, windows: int) -> None:
        """``windows`` windows, idle first; the engine side left running after the last."""
        try:
            for w in range(windows):
                phase = PHASES[w % 2]
                self.phase = SETTLING
                self._signal(signal.SIGSTOP if phase == "idle" else signal.SIGCONT)
                time.sleep(self.settle)
                with self.cpu[phase].counting():
                    self.phase = phase
                    time.sleep(self.window - self.settle)
                    self.phase = SETTLING
        finally:
            self._signal(signal.SIGCONT)

    def _signal(self, sent: signal.Signals) -> None:
        for pid in self.engine_side:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sent)

    def split(self, measured: Measured) -> dict[str, Measured]:
        """The run's requests by phase, those sent while settling left out."""
        phases = {phase: Measured(elapsed=self.cpu[phase].seconds) for phase in PHASES}
        for key, values in measured.latencies.items():
            phase, label = key.split(":", 1)
            if phase in phases:
                phases[phase].latencies[label] = values
        for key, count in measured.errors.items():
            phase, label = key.split(":", 1)
            if phase in phases:
                phases[phase].errors[label] = count
        return phases


def engine_events(store: Store, workflows: list[str]) -> int:
    return sum(store.stream_version(f"{WORKFLOW_PREFIX}{w}") for w in workflows)


# -- one measurement --------------------------------------------------------------------------

def measure(backend: str, placement: str, folder: Path,
            settings: Settings) -> dict[str, Any]:
    """``measure_placed``, with the Cassandra node on the engine side's CPU when pinned and
    ``--pin-store``."""
    pinned = placement == "pinned" and settings.pin_store
    with store_on(backend, ENGINE_CPU if pinned else "") as done:
        figures = measure_placed(backend, placement, folder, settings)
    figures[f"{backend}.{placement}.store_pinned"] = bool(done)
    return figures


def measure_placed(backend: str, placement: str, folder: Path,
                   settings: Settings) -> dict[str, Any]:
    """Idle, then saturated, GETs for one store and placement: figures by dotted name."""
    import tests.workflows  # noqa: F401 - registers test.noops for start_workflow's planning

    api_cpus, engine_cpus = (API_CPU, ENGINE_CPU) if placement == "pinned" else ("", "")
    prefix = f"{backend}.{placement}"
    figures: dict[str, Any] = {}
    path = folder / f"services-{placement}-{uuid.uuid4().hex[:6]}.db"
    with common.fresh_store(backend, KEYSPACE, CASSANDRA_URL, path) as (url, store), \
            contextlib.ExitStack() as stack:
        projector = stack.enter_context(running(Background(
            url, ["projector", "--nice", "0"], folder / f"projector-{placement}.log",
            engine_cpus)))
        # On Cassandra the API processes only read the feed: relaying committed events into
        # it is the engine side's work (doc/api-processes.rst, "Running several API processes")
        api_url = f"{url}?feed_relay=off" if backend == "cassandra" else url
        processes = [stack.enter_context(running(ApiProcess(api_url, folder, cpus=api_cpus)))
                     for _ in range(settings.processes)]
        for process in processes:
            process.wait_healthy()
        balancer = stack.enter_context(running(Balancer(
            [("127.0.0.1", p.port) for p in processes], folder, cpus=api_cpus)))
        balancer.wait_up(len(processes))
        project = f"bench-{uuid.uuid4().hex[:8]}"
        ids = seed(balancer.port, project, settings.seed, settings.clients)
        mixed = get_mixed(ids)
        api_side = [p.process.pid for p in processes] + [balancer.process.pid]
        names = [f"bench-services-{i}-{uuid.uuid4().hex[:4]}" for i in range(ENGINES)]
        engines = [stack.enter_context(running(Background(
            url, ["engine", "--id", name, "--concurrency", str(ENGINE_CONCURRENCY),
                  "--sweep-interval", "0.1", "--lease-ttl", "5", "--grace", "10",
                  "--load", "tests.workflows"], folder / f"{name}.log", engine_cpus)))
            for name in names]
        wait_until(lambda: all(engine_alive(store, n) for n in names), timeout=60)
        workflows = [start_workflow(store, "test.noops", {
            "tasks": settings.tasks_per_workflow, "shape": "parallel", "idempotent": False})
            for _ in range(settings.workflows)]
        time.sleep(1.0)  # the engines take the workflows and reach their concurrency
        alternation = Alternation([projector.process.pid] + [e.process.pid for e in engines],
                                  api_side, window=settings.window, settle=SETTLE)
        windows = 2 * max(1, round(settings.duration / (settings.window - SETTLE)))
        before = engine_events(store, workflows)
        with client_on(api_cpus):
            toggling = threading.Thread(target=alternation.run, args=(windows,),
                                        name="alternation")
            toggling.start()
            try:
                run = drive(balancer.port, project, alternation.labelled(mixed),
                            windows * settings.window, settings.clients, settings.rate)
            finally:
                toggling.join()
        after = engine_events(store, workflows)
        time.sleep(0.5)
        figures[f"{prefix}.saturated.engines_busy_throughout"] = \
            engine_events(store, workflows) > after
        figures[f"{prefix}.saturated.engine_events_per_s"] = \
            (after - before) / (windows // 2 * settings.window)
    for phase, measured in alternation.split(run).items():
        figures.update(phase_figures(f"{prefix}.{phase}", measured))
        figures[f"{prefix}.{phase}.api_side_cpu"] = alternation.cpu[phase].processes
        figures[f"{prefix}.{phase}.cpu0_busy"] = alternation.cpu[phase].cpu0
    figures[f"{prefix}.windows_per_phase"] = windows // 2
    figures[f"{prefix}.get_p99_ratio"] = (figures[f"{prefix}.saturated.get_p99_ms"]
                                          / figures[f"{prefix}.idle.get_p99_ms"])
    figures[f"{prefix}.show_p99_ratio"] = (figures[f"{prefix}.saturated.show_p99_ms"]
                                           / figures[f"{prefix}.idle.show_p99_ms"])
    figures[f"{prefix}.list_p99_ratio"] = (figures[f"{prefix}.saturated.list_p99_ms"]
                                           / figures[f"{prefix}.idle.list_p99_ms"])
    return figures


def phase_figures(prefix: str, measured: Measured) -> dict[str, float]:
    every = measured.all()
    return {
        f"{prefix}.get_p50_ms": percentile_ms(every, 50),
        f"{prefix}.get_p99_ms": percentile_ms(every, 99),
        f"{prefix}.show_p99_ms": percentile_ms(measured.latencies.get("get_show", []), 99),
        f"{prefix}.list_p99_ms": percentile_ms(measured.latencies.get("get_list", []), 99),
        f"{prefix}.get_rps": len(every) / measured.elapsed,
        f"{prefix}.requests": float(len(every)),
        f"{prefix}.errors": float(sum(measured.errors.values())),
    }


# -- benchmarks/wakeups.py, if another part of the project wrote it ---------------------------

def wakeup_figures(quick: bool, backends: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``benchmarks.wakeups.run(quick=..., backends=...)``'s figures, or why there are none."""
    try:
        wakeups = importlib.import_module("benchmarks.wakeups")
    except ModuleNotFoundError as error:
        if error.name != "benchmarks.wakeups":
            raise
        return {}, ["benchmarks/wakeups.py is not there: no cast-vs-sweep latency or engine"
                    " scaling figures in this run"]
    run = getattr(wakeups, "run", None)
    if not callable(run):
        return {}, ["benchmarks/wakeups.py has no run(quick=..., backends=...) returning a"
                    " dict: its figures are not in this run"]
    found: dict[str, Any] = run(quick=quick, backends=backends)
    return found, []


# -- output -----------------------------------------------------------------------------------

def show_tables(figures: dict[str, Any], backends: list[str], settings: Settings,
                extra: dict[str, Any], notes: list[str]) -> None:
    console = wide_console()
    table = Table(title=f"GET (show and list in turn) through HAProxy to {settings.processes}"
                        f" API processes, {settings.rate:g} req/s offered by"
                        f" {settings.clients} clients; {settings.window:g} s windows,"
                        f" idle ({ENGINES} engines stopped) and saturated in turn, about"
                        f" {settings.duration:g} s measured of each")
    for column in ("store", "placement", "phase", "req/s", "p50 ms", "p99 ms", "show p99",
                   "list p99", "p99/idle", "errors", "engine events/s", "API side CPU",
                   "CPU 0 busy"):
        table.add_column(column, justify="left" if column in ("store", "placement", "phase")
                         else "right")
    for backend in backends:
        for placement in PLACEMENTS:
            prefix = f"{backend}.{placement}"
            for phase in ("idle", "saturated"):
                p = f"{prefix}.{phase}"
                ratio = figures[f"{p}.get_p99_ms"] / figures[f"{prefix}.idle.get_p99_ms"]
                events = (f"{figures[f'{p}.engine_events_per_s']:,.0f}"
                          if phase == "saturated" else "-")
                table.add_row(backend, placement, phase, f"{figures[f'{p}.get_rps']:,.1f}",
                              f"{figures[f'{p}.get_p50_ms']:.2f}",
                              f"{figures[f'{p}.get_p99_ms']:.2f}",
                              f"{figures[f'{p}.show_p99_ms']:.2f}",
                              f"{figures[f'{p}.list_p99_ms']:.2f}", f"{ratio:.2f}",
                              f"{figures[f'{p}.errors']:,.0f}", events,
                              f"{figures[f'{p}.api_side_cpu']:.2f}",
                              f"{figures[f'{p}.cpu0_busy']:.0%}")
    console.print(table)
    if extra:
        wakeups = Table(title="benchmarks/wakeups.py")
        wakeups.add_column("figure")
        wakeups.add_column("value", justify="right")
        for key in sorted(extra):
            value = extra[key]
            wakeups.add_row(key, f"{value:,.2f}" if isinstance(value, float) else str(value))
        console.print(wakeups)
    print_notes(console, notes)


def arguments() -> argparse.Namespace:
    parser = scenario_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
    parser.add_argument("--rate", type=float, default=40.0,
                        help="GETs offered per second, idle and saturated alike (default 40)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="seconds measured of each phase (default 30, 5 with --quick)")
    parser.add_argument("--window", type=float, default=2.0,
                        help="seconds of each idle or saturated window (default 2)")
    parser.add_argument("--processes", type=int, default=2, help="API processes (default 2)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--pin-store", action="store_true",
                        help="pinned: move the running Cassandra node (tools/cassandra) to the"
                             " engines' CPU for the measurement, and back after; it is shared:"
                             " only on a machine nobody else uses")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    settings = settings_from(args)
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("benchmarks/services.py pins two sides to a CPU each: it needs two")
    backends = ["sqlite"] if args.sqlite_only else ["sqlite", "cassandra"]
    figures: dict[str, Any] = {"quick": settings.quick, "rate_rps": settings.rate,
                               "duration_seconds": settings.duration,
                               "window_seconds": settings.window,
                               "settle_seconds": SETTLE,
                               "api_processes": settings.processes,
                               "clients": settings.clients, "engines": ENGINES,
                               "cpus": os.cpu_count(), "get_p99_ratio_goal": GOAL}
    notes: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder_name:
        for backend in backends:
            for placement in PLACEMENTS:
                figures.update(measure(backend, placement, Path(folder_name), settings))
                if not figures[f"{backend}.{placement}.saturated.engines_busy_throughout"]:
                    notes.append(f"{backend} {placement}: the engines ran out of work before"
                                 " the end of the saturated window: raise the workflows")
    extra, extra_notes = wakeup_figures(settings.quick, backends)
    figures.update(extra)
    notes.extend(extra_notes)
    worst = max(figures[f"{b}.pinned.get_p99_ratio"] for b in backends)
    figures["pinned.get_p99_ratio"] = worst
    figures["pinned.meets_goal"] = worst <= GOAL
    figures["seconds"] = time.monotonic() - started
    for b in backends:
        notes.append(f"{b}: saturated / idle GET p99 = "
                     f"{figures[f'{b}.pinned.get_p99_ratio']:.2f} pinned,"
                     f" {figures[f'{b}.unpinned.get_p99_ratio']:.2f} unpinned")
    notes.append(f"pinned.get_p99_ratio (worst store) = {worst:.2f}, goal <= {GOAL:g}: "
                 f"{'met' if worst <= GOAL else 'NOT met'}; whole run"
                 f" {figures['seconds']:.0f} s on {os.cpu_count()} CPUs")
    output(figures, args.json,
           lambda: show_tables(figures, backends, settings, extra, notes))


if __name__ == "__main__":
    main()
