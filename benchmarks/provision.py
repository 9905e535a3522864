"""Cluster provisioning, orchestration only ("excluding boot"): the time to configure a
50-node cluster on 1, 2 and 4 engine processes, and 10 clusters launched at once on 2 engines
against one after another.

    python benchmarks/provision.py [--json] [--quick] [--cassandra] [--nodes 50]
                                   [--clusters 10] [--configure-seconds 0.2]

Clusters are made through the v2 API (served in this process by ``create_app`` with engines
attached and the quota, as ``all-in-one`` composes it, but with no engine here)
with the ``fake`` plugin: one ``namenode`` node and the rest ``datanode`` nodes, all
``local.small``.
Real ``sahara-es engine`` processes (``--hosts 8``: 8 hosts of 8 vCPUs; ``--concurrency 4``,
so that one engine is the bottleneck) share one ``--data-dir``, where the local instances
(an sshd each, on its own loopback address) live. Each node's configuration is one SSH
``sleep <configure-seconds>`` (cluster config ``{"Fake": {"configure_seconds": S}}``), its
start one SSH ``echo``: work that parallelises over engines.

Figures, from the cluster's own events (the provisioning steps' first and last event):

- ``boot``: the "Spawning instances" step (sshd processes started, answering SSH);
- ``configure``: the "Configuring nodes" step's start to the "Starting services" step's last
  node (both plugin phases, and the hand-over between them). The headline, excluding boot;
- ``total``: the cluster's creation to its ``Active`` status.

1. One cluster of ``--nodes`` nodes on 1, 2 and 4 engines, each on a fresh store and data
   dir: the speed-up is the 1-engine time over the N-engine time.
2. On 2 engines and one fresh store: ``--clusters`` clusters of 5 nodes created at once (all
   the POSTs, then wait for all to be Active), deleted, then the same one after another (each
   waited for before the next POST): wall time measured by the client, boot included.
   ``simultaneous_ratio`` is sequential over simultaneous (how many times faster at once).

Every scenario deletes its clusters through the API, waits until they are gone and checks
that no local instance is left; engines are stopped in ``finally``. SQLite by default (a new
file per scenario); ``--cassandra`` also runs on the Cassandra node (keyspace
``sahara_es_bench_provision``, dropped before each scenario).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask.testing import FlaskClient
from rich.table import Table

from benchmarks.common import (
    api_with_services,
    fresh_store,
    output,
    print_notes,
    scenario_parser,
    store_notes,
    wide_console,
)
from sahara_es.api.app import stop_app
from sahara_es.commands import resources
from sahara_es.engine import load_workflow
from sahara_es.events.resources import Kind
from sahara_es.infra.local import LocalProvider
from sahara_es.infra.quotas import QuotaLimits
from sahara_es.provisioning.ids import create_id
from sahara_es.provisioning.services import provisioning_services
from sahara_es.store import Store
from tests.engines import EngineProcess, engine_alive, wait_until
from tests.factories import CASSANDRA_HOST
from tests.nodes import node_root, remove_node_root

ROOT = Path(__file__).resolve().parent.parent

PROVISION_KEYSPACE = "sahara_es_bench_provision"  # dropped before each scenario
PROVISION_CASSANDRA_URL = f"cassandra://{CASSANDRA_HOST}:9042/{PROVISION_KEYSPACE}"
HOSTS = 8  # of 8 vCPUs and 16 GB each: room for 64 local.small nodes
SIMULTANEOUS_ENGINES = 2
QUOTA = QuotaLimits(instances=500, cores=1000, ram_mb=1024 * 1024)
TIMEOUT = float(os.environ.get("SAHARA_ES_BENCH_TIMEOUT", "600"))


@dataclass(frozen=True, kw_only=True)
class Settings:
    nodes: int
    """Nodes of the big cluster, the manager included."""
    engine_counts: tuple[int, ...]
    clusters: int
    cluster_nodes: int
    configure_seconds: float
    concurrency: int
    project_share: float
    lease_ttl: float
    sweep_interval: float


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(nodes=args.nodes or (12 if args.quick else 50),
                    engine_counts=tuple(int(n) for n in args.engines.split(",")),
                    clusters=args.clusters or (3 if args.quick else 10),
                    cluster_nodes=3 if args.quick else 5,
                    configure_seconds=args.configure_seconds, concurrency=args.concurrency,
                    project_share=args.project_share, lease_ttl=10.0, sweep_interval=0.1)


# -- the processes ----------------------------------------------------------------------------

@dataclass
class Service:
    """The API in this process, the engines beside it, and the provider to check with."""

    store: Store
    client: FlaskClient
    provider: LocalProvider
    engines: list[EngineProcess]
    project: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Project-Id": self.project}


@contextlib.contextmanager
def service(backend: str, folder: Path, tag: str, engines: int,
            settings: Settings) -> Iterator[Service]:
    data_dir = node_root()  # the nodes' users traverse it: not under the 0700 temporary folder
    with fresh_store(backend, PROVISION_KEYSPACE, PROVISION_CASSANDRA_URL,
                     folder / f"provision-{tag}.db") as (url, store), \
            contextlib.ExitStack() as leftovers:  # killed at the end if a stop timed out
        services, app = api_with_services(store, data_dir, HOSTS, QUOTA)
        typed = provisioning_services(services)
        provider = typed.provider
        assert isinstance(provider, LocalProvider)
        running: list[EngineProcess] = []
        try:
            for i in range(engines):
                running.append(leftovers.enter_context(EngineProcess(
                    url, f"prov-{tag}-{i}", data_dir, lease_ttl=settings.lease_ttl,
                    concurrency=settings.concurrency, sweep_interval=settings.sweep_interval,
                    extra=("--data-dir", str(data_dir), "--nodes-dir", str(data_dir),
                           "--hosts", str(HOSTS),
                           "--project-share", str(settings.project_share)))))
            names = [e.engine_id for e in running]
            wait_until(lambda: all(engine_alive(store, n) for n in names), timeout=120,
                       poll=0.1)
            yield Service(store, app.test_client(), provider, running,
                          f"bench-{uuid.uuid4().hex[:6]}")
        except BaseException:
            for engine in running:  # the engines' own account, before the folder goes
                lines = engine.log.read_text(errors="replace").splitlines()
                tail = [line for line in lines  # paramiko's connection chatter left out
                        if "Authentication (publickey)" not in line
                        and "Connected (version" not in line][-40:]
                print(f"--- {engine.engine_id} (exit {engine.process.poll()}):",
                      *tail, sep="\n", file=sys.stderr)
            raise
        finally:
            for engine in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    engine.stop()
            stop_app(app)
            for instance in provider.list_instances():  # after a failure: leave no sshd
                provider.delete_instance(instance.name)
            typed.ssh.close()
            remove_node_root(data_dir)


# -- clusters ---------------------------------------------------------------------------------

def create(svc: Service, nodes: int, settings: Settings) -> str:
    response = svc.client.post("/v2/clusters", headers=svc.headers, json={
        "name": f"c{uuid.uuid4().hex[:8]}", "plugin_name": "fake", "plugin_version": "0.1",
        "cluster_configs": {"Fake": {"configure_seconds": settings.configure_seconds}},
        "node_groups": [
            {"name": "manager", "flavor_id": "local.small", "node_processes": ["namenode"],
             "count": 1},
            {"name": "workers", "flavor_id": "local.small", "node_processes": ["datanode"],
             "count": nodes - 1}]})
    assert response.status_code == 202, response.get_json()
    cluster_id: str = response.get_json()["cluster"]["id"]
    return cluster_id


def status(svc: Service, cluster_id: str) -> str:
    response = svc.client.get(f"/v2/clusters/{cluster_id}", headers=svc.headers)
    if response.status_code == 404:
        return "gone"
    assert response.status_code == 200, response.get_json()
    cluster = response.get_json()["cluster"]
    if cluster["status"] == "Error":
        raise AssertionError(f"cluster {cluster_id} failed: {cluster['status_description']}")
    answer: str = cluster["status"]
    return answer


def wait_all(svc: Service, cluster_ids: list[str], wanted: str) -> None:
    waiting = set(cluster_ids)
    deadline = time.monotonic() + TIMEOUT
    while waiting:
        waiting = {c for c in waiting if status(svc, c) != wanted}
        if not waiting:
            return
        if time.monotonic() > deadline:
            stuck = {c: stuck_tasks(svc.store, c) for c in sorted(waiting)}
            raise AssertionError(f"not {wanted} after {TIMEOUT:g} s: {stuck}")
        time.sleep(0.1)


def stuck_tasks(store: Store, cluster_id: str) -> dict[str, Any]:
    """What a cluster that does not finish waits for: its workflows' unfinished tasks."""
    found: dict[str, Any] = {}
    for kind in ("create", "delete"):
        state = load_workflow(store, f"{kind}-{cluster_id}")
        if state.version:
            found[kind] = {**state.summary(), "unfinished": {
                t.spec.id: f"{t.status} on {t.engine} (attempt {t.attempt})"
                for t in state.tasks.values() if t.status in ("offered", "running")}}
    return found


def delete_all(svc: Service, cluster_ids: list[str]) -> float:
    """Delete through the API, wait until gone; the seconds it took. No instance may stay."""
    started = time.perf_counter()
    for cluster_id in cluster_ids:
        response = svc.client.delete(f"/v2/clusters/{cluster_id}", headers=svc.headers)
        assert response.status_code == 204, response.get_json()
    wait_all(svc, cluster_ids, "gone")
    elapsed = time.perf_counter() - started
    left = svc.provider.list_instances()
    assert not left, f"instances left after the delete: {[i.name for i in left]}"
    return elapsed


def seconds(value: Any) -> float:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.timestamp()


def phases(store: Store, cluster_id: str) -> dict[str, float]:
    """boot, configure (configure + start phases), total: from the cluster's events."""
    aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
    assert aggregate.doc is not None
    steps = {s["step_name"]: s for s in aggregate.doc["provision_progress"]}
    events = list(store.read(Kind.CLUSTER.stream(cluster_id)))
    created = seconds(events[0].metadata.occurred_at)
    active = max(seconds(e.metadata.occurred_at) for e in events
                 if e.type == "ClusterStatusChanged" and e.data.get("status") == "Active")

    def span(first: str, last: str) -> float:
        return seconds(steps[last]["updated_at"]) - seconds(steps[first]["created_at"])

    workflow = load_workflow(store, create_id(cluster_id))
    configured_by = {t.engine for t in workflow.tasks.values()
                     if t.spec.type == "cluster.node-step" and ".configure-" in f".{t.spec.id}"}
    return {"boot_s": span("Spawning instances", "Spawning instances"),
            "configure_only_s": span("Configuring nodes", "Configuring nodes"),
            "start_only_s": span("Starting services", "Starting services"),
            "configure_s": span("Configuring nodes", "Starting services"),
            "total_s": active - created,
            "total_excluding_boot_s": active - created - span("Spawning instances",
                                                               "Spawning instances"),
            "engines_used": float(len(configured_by - {None}))}


# -- the scenarios ----------------------------------------------------------------------------

def big_cluster(backend: str, folder: Path, settings: Settings) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for count in settings.engine_counts:
        tag = f"{backend}-big-{count}-{uuid.uuid4().hex[:4]}"
        with service(backend, folder, tag, count, settings) as svc:
            if count == settings.engine_counts[0]:
                figures[f"{backend}_store"] = svc.store.describe()
            started = time.perf_counter()
            cluster_id = create(svc, settings.nodes, settings)
            wait_all(svc, [cluster_id], "Active")
            wall = time.perf_counter() - started
            prefix = f"{backend}_engines{count}"
            figures.update({f"{prefix}_{k}": v for k, v in
                            phases(svc.store, cluster_id).items()})
            figures[f"{prefix}_wall_s"] = wall
            figures[f"{prefix}_delete_s"] = delete_all(svc, [cluster_id])
    # speed-up over one engine: configure+start (the headline), excluding boot, whole
    if 1 not in settings.engine_counts:
        return figures
    one = figures[f"{backend}_engines1_configure_s"]
    one_excl = figures[f"{backend}_engines1_total_excluding_boot_s"]
    one_total = figures[f"{backend}_engines1_total_s"]
    for count in settings.engine_counts:
        p = f"{backend}_engines{count}"
        figures[f"{p}_speedup"] = one / figures[f"{p}_configure_s"]
        figures[f"{p}_excluding_boot_speedup"] = one_excl / figures[f"{p}_total_excluding_boot_s"]
        figures[f"{p}_total_speedup"] = one_total / figures[f"{p}_total_s"]
    return figures


def many_clusters(backend: str, folder: Path, settings: Settings) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    n = settings.clusters
    prefix = backend
    tag = f"{backend}-many-{uuid.uuid4().hex[:4]}"
    with service(backend, folder, tag, SIMULTANEOUS_ENGINES, settings) as svc:
        started = time.perf_counter()
        ids = [create(svc, settings.cluster_nodes, settings) for _ in range(n)]
        wait_all(svc, ids, "Active")
        figures[f"{prefix}_simultaneous_{n}_s"] = time.perf_counter() - started
        measured = [phases(svc.store, c) for c in ids]
        figures[f"{prefix}_simultaneous_mean_total_s"] = (
            sum(m["total_s"] for m in measured) / n)
        figures[f"{prefix}_simultaneous_delete_s"] = delete_all(svc, ids)

        started = time.perf_counter()
        ids = []
        for _ in range(n):
            ids.append(create(svc, settings.cluster_nodes, settings))
            wait_all(svc, ids[-1:], "Active")
        figures[f"{prefix}_sequential_{n}_s"] = time.perf_counter() - started
        measured = [phases(svc.store, c) for c in ids]
        figures[f"{prefix}_sequential_mean_total_s"] = sum(m["total_s"] for m in measured) / n
        figures[f"{prefix}_sequential_delete_s"] = delete_all(svc, ids)
    figures[f"{prefix}_simultaneous_ratio"] = (figures[f"{prefix}_sequential_{n}_s"]
                                               / figures[f"{prefix}_simultaneous_{n}_s"])
    return figures


# -- output -----------------------------------------------------------------------------------

def show_tables(figures: dict[str, Any], backends: list[str], settings: Settings,
                notes: list[str]) -> None:
    console = wide_console()
    big = Table(title=f"one {settings.nodes}-node fake cluster (configure: ssh sleep "
                      f"{settings.configure_seconds:g} s per node), engines of concurrency "
                      f"{settings.concurrency}")
    for column in ("store", "engines", "configure+start s", "speed-up", "boot s",
                   "total - boot s", "speed-up", "total s", "wall s", "engines used"):
        big.add_column(column, justify="left" if column == "store" else "right")
    for backend in backends:
        for count in settings.engine_counts:
            p = f"{backend}_engines{count}"
            big.add_row(backend, str(count), f"{figures[p + '_configure_s']:.2f}",
                        f"{figures.get(p + '_speedup', float('nan')):.2f}x",
                        f"{figures[p + '_boot_s']:.2f}",
                        f"{figures[p + '_total_excluding_boot_s']:.2f}",
                        f"{figures.get(p + '_excluding_boot_speedup', float('nan')):.2f}x",
                        f"{figures[p + '_total_s']:.2f}", f"{figures[p + '_wall_s']:.2f}",
                        f"{figures[p + '_engines_used']:.0f}")
    console.print(big)
    n = settings.clusters
    if f"{backends[0]}_simultaneous_ratio" not in figures:
        backends = []
    many = Table(title=f"{n} clusters of {settings.cluster_nodes} nodes on "
                       f"{SIMULTANEOUS_ENGINES} engines (wall time, boot included)")
    for column in ("store", "simultaneous s", "sequential s", "sequential/simultaneous",
                   "mean create s (sim.)", "mean create s (seq.)"):
        many.add_column(column, justify="left" if column == "store" else "right")
    for backend in backends:
        many.add_row(backend, f"{figures[f'{backend}_simultaneous_{n}_s']:.2f}",
                     f"{figures[f'{backend}_sequential_{n}_s']:.2f}",
                     f"{figures[f'{backend}_simultaneous_ratio']:.2f}x",
                     f"{figures[f'{backend}_simultaneous_mean_total_s']:.2f}",
                     f"{figures[f'{backend}_sequential_mean_total_s']:.2f}")
    if backends:
        console.print(many)
    print_notes(console, notes)


def arguments() -> argparse.Namespace:
    parser = scenario_parser(__doc__, sqlite_only=False)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 12 nodes, 3 clusters of 3")
    parser.add_argument("--cassandra", action="store_true",
                        help="also run on the Cassandra node")
    parser.add_argument("--nodes", type=int, default=0, help="nodes of the big cluster (50)")
    parser.add_argument("--engines", default="1,2,4",
                        help="engine process counts for the big cluster (1 first)")
    parser.add_argument("--skip-many", action="store_true",
                        help="only the big cluster (for a look at one engine count)")
    parser.add_argument("--clusters", type=int, default=0, help="clusters launched (10)")
    parser.add_argument("--configure-seconds", type=float, default=0.2,
                        help="each node's configuration: ssh sleep this long")
    parser.add_argument("--concurrency", type=int, default=4, help="each engine's --concurrency")
    parser.add_argument("--project-share", type=float, default=1.0,
                        help="each engine's --project-share: the benchmark is one project,"
                             " measuring the orchestration alone (1.0); 0.5 is the engines'"
                             " default, which holds one project to half the slots")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    settings = settings_from(args)
    backends = ["sqlite", "cassandra"] if args.cassandra else ["sqlite"]
    figures: dict[str, Any] = {
        "nodes": settings.nodes, "clusters": settings.clusters,
        "cluster_nodes": settings.cluster_nodes,
        "configure_seconds": settings.configure_seconds,
        "engine_concurrency": settings.concurrency,
        "engine_project_share": settings.project_share, "hosts": HOSTS, "cpus": os.cpu_count()}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="provbench-") as folder_name:
        folder = Path(folder_name)
        for backend in backends:
            figures.update(big_cluster(backend, folder, settings))
            if not args.skip_many:
                figures.update(many_clusters(backend, folder, settings))
    figures["seconds"] = time.monotonic() - started
    notes = store_notes(figures, backends)
    notes += [
        f"engines: sahara-es engine --hosts {HOSTS} --concurrency {settings.concurrency} "
        f"--project-share {settings.project_share:g} --lease-ttl {settings.lease_ttl:g} "
        f"--sweep-interval {settings.sweep_interval:g}, one "
        f"--data-dir per scenario; fake plugin, cluster_configs "
        f"{{\"Fake\": {{\"configure_seconds\": {settings.configure_seconds:g}}}}}",
        "configure+start: the 'Configuring nodes' step's start to the 'Starting services' "
        "step's last node event (excludes boot, the headline); boot: the 'Spawning "
        "instances' step; total: created to Active; speed-up: 1 engine's time over N's",
        f"whole run {figures['seconds']:.0f} s on {os.cpu_count()} CPUs"]
    output(figures, args.json, lambda: show_tables(figures, backends, settings, notes))


if __name__ == "__main__":
    main()
