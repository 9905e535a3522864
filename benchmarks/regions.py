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

Not measured here: a takeover's time after a region dies and the region-death scenario
(``lost_workflows``, ``doubled_effects``...): they need engines that carry a region, which
come later.

    python -m benchmarks.regions [--json] [--ops N] [--delays 0,20,50] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.common import report
from sahara_es.events import NewEvent
from sahara_es.store import Store, open_store, region_claim_key
from tests import regions


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object of figures")
    parser.add_argument("--ops", type=int, default=100, help="operations per measurement")
    parser.add_argument("--delays", default="0,20,50",
                        help="one-way delays between the datacenters, in ms")
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
        "store": {key: described[key] for key in (
            "cassandra_version", "paxos_variant", "consistency", "ownership_serial",
            "claims_serial", "region_claims_serial", "region")},
    }
    rows = [(f"{name} at {delay} ms one way", "ms", value)
            for delay, measured in by_delay.items() for name, value in measured.items()]
    notes = [
        f"{ops} operations a measure, one at a time, from dc1; replication dc1:1,dc2:1,dc3:1"
        " (region-homed: dc1:1).",
        "Not measured: takeover time after a region dies, the region-death scenario (they"
        " need engines with regions).",
    ]
    report("regions: SERIAL vs LOCAL_SERIAL across three datacenters", rows, figures,
           args.json, notes)


if __name__ == "__main__":
    main()
