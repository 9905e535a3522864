"""What ownership across regions costs: latencies on the three-datacenter Cassandra of
``tools/cassandra-regions`` (started here unless it runs), with 0, 20 and 50 ms added one way
between the datacenters by its delay proxy.

Measured from dc1, one operation at a time (latency, not throughput):

- ``append_serial``: a lease-guarded append of one event (the LWT at SERIAL a workflow's
  owner makes at every step), in a keyspace replicated to all three datacenters;
- ``claim_serial``: a global claim (read and LWT at SERIAL: a quota shared by every region);
- ``claim_local_serial``: a region-local claim (``region_claim_key``: read and LWT at
  LOCAL_SERIAL: a region's host capacity);
- ``append_region_homed``: the same lease-guarded append in a keyspace replicated in dc1 only,
  where SERIAL rounds stay in the region: what a workflow would cost that no other region can
  take over;
- ``global_cost_per_event_ms``: ``append_serial`` minus ``append_region_homed`` (p50), per
  event: what running global adds to each event a workflow records.

The region-death scenario (``region_death``), at ``--death-delay`` ms one way (20): real
``sahara-es engine`` processes in dc1, dc2 and dc3, ``--workflows`` workflows homed in dc3
owned by dc3's engine and held mid-way; then dc3's engine is killed (``kill -9``) and dc3's
node with it. Reported: ``takeover_s`` (from the kill until every workflow has an owner of
dc1 or dc2), ``takeover_minus_budget_s`` (budget: the lease TTL + 2 s + one added round trip;
``region_takeover_grace`` is 0 here, a configured grace adds itself), ``lost_workflows``
(not finished once dc1 and dc2 had them) and ``doubled_effects`` (task effects that happened
more than once).

    python -m benchmarks.regions [--json] [--ops N] [--delays 0,20,50] [--quick]
        [--death-delay MS] [--workflows N] [--lease-ttl S]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import report
from sahara_es.engine import start_workflow
from sahara_es.engine.engine import events_of
from sahara_es.events import NewEvent
from sahara_es.events import workflow as ev
from sahara_es.store import Store, open_store, region_claim_key
from tests import regions
from tests.engines import EngineProcess, engine_alive, wait_until
from tests.workflows import lines

TASKS = 3


def latencies(op: Callable[[int], Any], ops: int) -> list[float]:
    """Milliseconds of each of ``ops`` calls of ``op(i)``, one after another (after two
    unmeasured ones: connections and prepared statements warm)."""
    for i in range(-2, 0):
        op(i)
    out = []
    for i in range(ops):
        started = time.perf_counter()
        op(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2)}


def leased_appends(store: Store, ops: int) -> list[float]:
    stream = f"workflow-{uuid.uuid4().hex}"
    lease = store.acquire_lease(stream, "engine-dc1", ttl=600)
    store.fence(stream, lease)
    version = [store.stream_version(stream)]

    def append(i: int) -> None:
        version[0] = store.append(stream, [NewEvent(type="StepDone", data={"i": i})],
                                  version[0], lease=lease)

    try:
        return latencies(append, ops)
    finally:
        store.release_lease(lease)


def claims(store: Store, key: str, ops: int) -> list[float]:
    generation = [store.define_claim(key, ops + 10).generation]

    def claim(i: int) -> None:
        generation[0] = store.claim(key, f"instance-{i}", 1, generation[0]).generation

    return latencies(claim, ops)


def measure(delay: float, global_store: Store, homed_store: Store, ops: int) -> dict[str, Any]:
    regions.set_delay(delay)
    host = uuid.uuid4().hex
    figures: dict[str, Any] = {}
    for name, values in (
        ("append_serial", leased_appends(global_store, ops)),
        ("claim_serial", claims(global_store, f"quota:{host}:instances", ops)),
        ("claim_local_serial", claims(global_store, region_claim_key(
            "dc1", f"host:{host}:vcpus"), ops)),
        ("append_region_homed", leased_appends(homed_store, ops)),
    ):
        for stat, value in percentiles(values).items():
            figures[f"{name}_{stat}"] = value
    figures["global_cost_per_event_ms"] = round(
        figures["append_serial_p50_ms"] - figures["append_region_homed_p50_ms"], 2)
    return figures


def region_death(delay: float, workflows: int, lease_ttl: float) -> dict[str, Any]:
    """dc3's engine and node killed while dc3's workflows run: how long until dc1 and dc2
    own them all, and whether any was lost or any effect happened twice."""
    regions.set_delay(delay)
    keyspace = regions.new_keyspace_name()
    folder = Path(tempfile.mkdtemp(prefix="regions-death-"))
    gate = folder / "gate"
    store = open_store(regions.regions_url(keyspace, "dc1"), upgrade=True)
    in_dc3 = open_store(regions.regions_url(keyspace, "dc3"))
    engines = {region: EngineProcess(
        regions.regions_url(keyspace, region), f"e-{region}", folder, lease_ttl=lease_ttl,
        sweep_interval=0.2, extra=("--region", region, "--region-takeover-grace", "0"))
        for region in regions.DATACENTERS}
    killed = False
    try:
        wait_until(lambda: all(engine_alive(store, f"e-{r}", r) for r in engines), timeout=120)
        started = {start_workflow(in_dc3, "test.chain", {
            "tasks": TASKS, "effects": str(folder / f"effects-{n}"), "gate": str(gate)}):
            folder / f"effects-{n}" for n in range(workflows)}

        def owners(workflow: str) -> list[ev.WorkflowOwned]:
            return [e for e in events_of(store, f"workflow-{workflow}")
                    if isinstance(e, ev.WorkflowOwned)]

        wait_until(lambda: all(owners(w) for w in started), timeout=120, poll=0.2)
        killed_at = time.monotonic()
        engines["dc3"].kill()
        regions.kill("dc3")
        killed = True
        gate.touch()
        wait_until(lambda: all(owners(w)[-1].region != "dc3" for w in started),
                   timeout=120, poll=0.1)
        takeover = time.monotonic() - killed_at
        with contextlib.suppress(AssertionError):  # what is not finished is counted as lost
            wait_until(lambda: all(any(isinstance(e, ev.WorkflowSucceeded) for e in events_of(
                store, f"workflow-{w}")) for w in started), timeout=120, poll=0.5)
        lost = sum(1 for w in started if not any(isinstance(e, ev.WorkflowSucceeded)
                                                  for e in events_of(store, f"workflow-{w}")))
        doubled = sum(len(lines(path)) - len(set(lines(path))) for path in started.values())
    finally:
        for engine in engines.values():
            if engine.process.poll() is None:
                engine.stop()
        if killed:
            regions.restart("dc3")
        regions.set_delay(0)
        in_dc3.close()
        store.close()
        regions.drop_keyspace(keyspace)
    budget = lease_ttl + 2 + 2 * delay / 1000
    return {"delay_ms_one_way": delay, "workflows": workflows, "lease_ttl_s": lease_ttl,
            "region_takeover_grace_s": 0.0, "lost_workflows": lost,
            "doubled_effects": doubled, "takeover_s": round(takeover, 2),
            "budget_s": round(budget, 3),
            "takeover_minus_budget_s": round(takeover - budget, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object of figures")
    parser.add_argument("--ops", type=int, default=100, help="operations per measurement")
    parser.add_argument("--delays", default="0,20,50",
                        help="one-way delays between the datacenters, in ms")
    parser.add_argument("--death-delay", type=float, default=20.0,
                        help="one-way delay in ms for the region-death scenario")
    parser.add_argument("--workflows", type=int, default=10,
                        help="dc3's workflows in the region-death scenario")
    parser.add_argument("--lease-ttl", type=float, default=5.0,
                        help="the engines' lease TTL in the region-death scenario")
    parser.add_argument("--quick", action="store_true",
                        help="a proof that it runs: 10 operations, delays 0 and 20 ms")
    args = parser.parse_args()
    ops = 10 if args.quick else args.ops
    delays = [0.0, 20.0] if args.quick else [float(d) for d in args.delays.split(",")]
    keyspace, homed = regions.new_keyspace_name(), regions.new_keyspace_name()
    by_delay: dict[str, dict[str, Any]] = {}
    with regions.regions_running():
        global_store = open_store(regions.regions_url(keyspace, "dc1"), upgrade=True)
        homed_store = open_store(regions.regions_url(homed, "dc1", replication="dc1:1"),
                                 upgrade=True)
        try:
            described = global_store.describe()
            for delay in delays:
                by_delay[f"{delay:g}"] = measure(delay, global_store, homed_store, ops)
            death = region_death(args.death_delay, 4 if args.quick else args.workflows,
                                 args.lease_ttl)
        finally:
            regions.set_delay(0)
            global_store.close()
            homed_store.close()
            for name in (keyspace, homed):
                regions.drop_keyspace(name)
    figures = {
        "ops": ops,
        "delays_ms": [float(d) for d in by_delay],
        "by_delay_ms": by_delay,
        "region_death": death,
        **{key: death[key] for key in ("lost_workflows", "doubled_effects", "takeover_s",
                                       "takeover_minus_budget_s")},
        "store": {key: described[key] for key in (
            "cassandra_version", "paxos_variant", "consistency", "ownership_serial",
            "claims_serial", "region_claims_serial", "region")},
    }
    rows = [(f"{name} at {delay} ms one way", "ms", value)
            for delay, measured in by_delay.items() for name, value in measured.items()]
    rows += [(f"region death: {name}", "", value) for name, value in death.items()]
    notes = [
        f"{ops} operations a measure, one at a time, from dc1; replication dc1:1,dc2:1,dc3:1"
        " (region-homed: dc1:1).",
        "Region death: dc3's engine (kill -9) and node killed, dc3's workflows held mid-way;"
        " budget = lease TTL + 2 s + one added round trip.",
    ]
    report("regions: SERIAL vs LOCAL_SERIAL across three datacenters", rows, figures,
           args.json, notes)


if __name__ == "__main__":
    main()
