"""Fairness and bounded deletes: what one project's hung clusters cost another project, and
how long deleting a cluster whose step hangs takes.

    python benchmarks/fairness.py [--json] [--sqlite-only] [--hanging 8] [--runs 3]
                                  [--concurrency 8]

One real ``sahara-es engine`` process (``--concurrency 8``: each project may hold half of
its slots) and the v2 API in this process (``create_app`` with engines attached and
the quota, the ``fake`` plugin enabled), on a fresh store per backend and local nodes (an
sshd each on its own loopback address). Clusters are 1-node ``fake`` clusters.

1. ``idle``: project B creates a cluster and waits for ``Active`` (``--runs`` times, one after
   another, each deleted before the next); the median time from the POST to ``Active``.
2. ``saturated``: project A creates ``--hanging`` clusters whose configure step never ends
   (``{"Fake": {"configure_seconds": 3600}}``: one remote ``sleep``) and waits until as many
   of them as A may run at once are in that step; then B's time to ``Active`` again, the
   same way. ``saturated_ratio`` is the saturated median over the idle one (1 is perfectly
   fair; before issue 12, B waited in ``Validating`` for as long as A's steps hung).
3. ``delete_hung``: A's hung clusters deleted one at a time, each from the DELETE to its
   being gone (404), while the others still hang: the cancel stops the running step and
   kills its remote command, the instance goes, claims and quota are released. Median and
   maximum over the clusters whose step was running, and over those still waiting for a
   slot. The run checks that no local instance and no quota is left.

Cassandra runs on the test node (keyspace ``sahara_es_bench_fairness``, dropped first);
``--sqlite-only`` skips it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from sahara_es.infra.local import LocalProvider, instance_processes
from sahara_es.infra.quotas import QuotaLimits
from sahara_es.provisioning.services import provisioning_services
from sahara_es.store import Store
from tests.clouds import create_fake_cluster, show_cluster
from tests.engines import EngineProcess, engine_alive, wait_until
from tests.factories import CASSANDRA_HOST
from tests.nodes import node_root, remove_node_root

KEYSPACE = "sahara_es_bench_fairness"
CASSANDRA_URL = f"cassandra://{CASSANDRA_HOST}:9042/{KEYSPACE}"
HOSTS = 3  # of 8 vCPUs and 16 GB: room for 24 local.small nodes
HANG_SECONDS = 3600
TIMEOUT = float(os.environ.get("SAHARA_ES_BENCH_TIMEOUT", "300"))
QUOTA = QuotaLimits(instances=50, cores=100, ram_mb=100 * 1024)


@dataclass
class Service:
    store: Store
    client: FlaskClient
    provider: LocalProvider
    quotas: Any


@contextlib.contextmanager
def service(backend: str, folder: Path, concurrency: int) -> Iterator[Service]:
    with fresh_store(backend, KEYSPACE, CASSANDRA_URL, folder / "fairness.db") as (url, store):
        yield from _service(backend, url, store, concurrency)


def _service(backend: str, url: str, store: Store, concurrency: int) -> Iterator[Service]:
    data_dir = node_root()
    services, app = api_with_services(store, data_dir, HOSTS, QUOTA)
    typed = provisioning_services(services)
    provider = typed.provider
    assert isinstance(provider, LocalProvider)
    engine = None
    try:
        engine = EngineProcess(url, f"fair-{backend}-{uuid.uuid4().hex[:4]}", data_dir,
                               lease_ttl=10.0, concurrency=concurrency, sweep_interval=0.1,
                               extra=("--data-dir", str(data_dir), "--nodes-dir",
                                      str(data_dir), "--hosts", str(HOSTS)))
        wait_until(lambda: engine_alive(store, engine.engine_id), timeout=120, poll=0.1)
        yield Service(store, app.test_client(), provider, typed.quotas)
    except BaseException:
        if engine is not None:
            tail = engine.log.read_text(errors="replace").splitlines()[-40:]
            print(f"--- {engine.engine_id}:", *tail, sep="\n", file=sys.stderr)
        raise
    finally:
        if engine is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                engine.stop()
        stop_app(app)
        for instance in provider.list_instances():  # after a failure: leave no sshd
            provider.delete_instance(instance.name)
        typed.ssh.close()
        remove_node_root(data_dir)


# -- clusters -----------------------------------------------------------------------------

def create(svc: Service, project: str, **fake: Any) -> str:
    return create_fake_cluster(svc.client, project, configs=fake)


def show(svc: Service, project: str, cluster_id: str) -> dict[str, Any] | None:
    cluster = show_cluster(svc.client, project, cluster_id)
    if cluster is not None and cluster["status"] == "Error":
        raise AssertionError(f"cluster {cluster_id} failed: {cluster['status_description']}")
    return cluster


def timed(condition: Callable[[], bool], what: str) -> float:
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > TIMEOUT:
            raise AssertionError(f"{what}: not within {TIMEOUT:g} s")
        time.sleep(0.05)
    return time.perf_counter() - started


def delete(svc: Service, project: str, cluster_id: str) -> float:
    """From the DELETE to the cluster's being gone, in seconds."""
    started = time.perf_counter()
    answer = svc.client.delete(f"/v2/clusters/{cluster_id}", headers={"X-Project-Id": project})
    assert answer.status_code == 204, answer.get_json()
    timed(lambda: show(svc, project, cluster_id) is None, f"deleting {cluster_id}")
    return time.perf_counter() - started


def time_to_active(svc: Service, project: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        cluster_id = create(svc, project)
        timed(lambda c=cluster_id: (show(svc, project, c) or {}).get("status") == "Active",
              f"cluster {cluster_id} Active")
        times.append(time.perf_counter() - started)
        delete(svc, project, cluster_id)
    return times


def sleeping(svc: Service, project: str, cluster_id: str) -> bool:
    """The cluster's configure step runs: its node's remote ``sleep`` is a live process."""
    cluster = show(svc, project, cluster_id) or {}
    for group in cluster.get("node_groups", []):
        for instance in group["instances"]:
            name = instance["instance_name"]
            config = svc.provider.folder(name) / "sshd_config"
            for pid in instance_processes(name, config):
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\0"):
                        return True
    return False


# -- the scenario -------------------------------------------------------------------------

def scenario(backend: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    a, b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    share = max(1, args.concurrency // 2)  # the engine's default project_share, 0.5
    figures: dict[str, Any] = {}
    with service(backend, folder, args.concurrency) as svc:
        idle = time_to_active(svc, b, args.runs)
        hung = [create(svc, a, configure_seconds=HANG_SECONDS) for _ in range(args.hanging)]
        expected = min(share, args.hanging)
        timed(lambda: sum(sleeping(svc, a, c) for c in hung) >= expected,
              f"{expected} of project A's clusters configuring")
        time.sleep(1.0)  # and A's other clusters asking for slots
        running = [c for c in hung if sleeping(svc, a, c)]
        saturated = time_to_active(svc, b, args.runs)
        still_hung = sum(1 for c in hung if (show(svc, a, c) or {}).get("status")
                         not in (None, "Active"))
        deletes_running = [delete(svc, a, c) for c in running]
        deletes_waiting = [delete(svc, a, c) for c in hung if c not in running]
        left = svc.provider.list_instances()
        assert not left, f"instances left: {[i.name for i in left]}"
        usage = {name: u.used for name, u in svc.quotas.usage(a).items()}
        assert not any(usage.values()), f"project A still holds quota: {usage}"
        figures[f"{backend}_store"] = svc.store.describe()
    idle_s, saturated_s = statistics.median(idle), statistics.median(saturated)
    figures.update({
        f"{backend}_idle_active_s": idle_s,
        f"{backend}_idle_active_runs_s": idle,
        f"{backend}_saturated_active_s": saturated_s,
        f"{backend}_saturated_active_runs_s": saturated,
        f"{backend}_saturated_ratio": saturated_s / idle_s,
        f"{backend}_hanging_clusters": args.hanging,
        f"{backend}_hanging_running": len(running),
        f"{backend}_hanging_still_hung_during_b": still_hung,
        f"{backend}_delete_hung_running_median_s": statistics.median(deletes_running),
        f"{backend}_delete_hung_running_max_s": max(deletes_running),
        f"{backend}_delete_hung_running_runs_s": deletes_running,
    })
    if deletes_waiting:
        figures[f"{backend}_delete_hung_waiting_median_s"] = statistics.median(deletes_waiting)
        figures[f"{backend}_delete_hung_waiting_max_s"] = max(deletes_waiting)
    return figures


# -- output -------------------------------------------------------------------------------

def show_table(figures: dict[str, Any], backends: list[str], args: argparse.Namespace,
               notes: list[str]) -> None:
    console = wide_console()
    table = Table(title=f"project B's 1-node fake cluster, idle and while project A has "
                        f"{args.hanging} hung clusters (engine --concurrency "
                        f"{args.concurrency}); deleting A's hung clusters")
    for column in ("store", "B to Active idle s", "B to Active saturated s", "ratio",
                   "A hung / running", "delete hung (running) s", "max s",
                   "delete hung (waiting) s"):
        table.add_column(column, justify="left" if column == "store" else "right")
    for backend in backends:
        def f(key: str, fmt: str = ".2f", backend: str = backend) -> str:
            value = figures.get(f"{backend}_{key}")
            return "-" if value is None else format(value, fmt)

        table.add_row(backend, f("idle_active_s"), f("saturated_active_s"),
                      f("saturated_ratio") + "x",
                      f"{f('hanging_still_hung_during_b', 'd')} / {f('hanging_running', 'd')}",
                      f("delete_hung_running_median_s"), f("delete_hung_running_max_s"),
                      f("delete_hung_waiting_median_s"))
    console.print(table)
    print_notes(console, notes)


def arguments() -> argparse.Namespace:
    parser = scenario_parser(__doc__)
    parser.add_argument("--hanging", type=int, default=8,
                        help="project A's clusters whose configure step hangs")
    parser.add_argument("--runs", type=int, default=3,
                        help="project B's clusters timed, idle and saturated")
    parser.add_argument("--concurrency", type=int, default=8, help="the engine's --concurrency")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    backends = ["sqlite"] if args.sqlite_only else ["sqlite", "cassandra"]
    figures: dict[str, Any] = {"hanging": args.hanging, "runs": args.runs,
                               "engine_concurrency": args.concurrency, "hosts": HOSTS,
                               "cpus": os.cpu_count()}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fairbench-") as folder_name:
        for backend in backends:
            figures.update(scenario(backend, Path(folder_name), args))
    figures["seconds"] = time.monotonic() - started
    notes = store_notes(figures, backends)
    notes += [
        f"one sahara-es engine --concurrency {args.concurrency} (a project holds at most "
        f"{max(1, args.concurrency // 2)} slots); B's times are medians of {args.runs} "
        "clusters, POST to Active; 'A hung / running': A's clusters still hung while B's were "
        "timed / those whose configure step ran",
        "delete hung: DELETE to 404 for each of A's hung clusters in turn (running: its "
        "remote sleep was running; waiting: it waited for a slot); no instance or quota left",
        f"whole run {figures['seconds']:.0f} s on {os.cpu_count()} CPUs"]
    output(figures, args.json, lambda: show_table(figures, backends, args, notes))


if __name__ == "__main__":
    main()
