"""Engines of three regions on one replicated keyspace (doc/regions.rst), as real ``sahara-es
engine`` processes against the real three-datacenter Cassandra (``tools/cassandra-regions``),
each test in the session's keyspace emptied for it.

- A workflow's home region is the region of the process that started it; its region's engines
  run it. An engine of another region takes it over only when no engine of its home region is
  left, ``region_takeover_grace`` after its lease expired, and records the handover
  (``WorkflowTakenOver``); the takeover reconciles, no task runs twice.
- Engines of all three regions racing for the same 200 global workflows never make two owners of
  one epoch; every workflow finishes once, every task's effect happens once.
- dc3's node and engine gone: dc1's and dc2's engines take dc3's workflows over and finish
  them, nothing lost; dc3 back, its engine runs dc3's workflows again.
- A region's schedulers claim its hosts region-locally (LOCAL_SERIAL): racing, they never
  overcommit; another region's process cannot claim them.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sahara_es.engine import start_workflow
from sahara_es.engine.engine import events_of
from sahara_es.events import workflow as ev
from sahara_es.infra.base import Flavor, HostInventory
from sahara_es.infra.placement import NodeRequest, NoValidHost, Scheduler
from sahara_es.store import ForeignRegion, Store, open_store, region_claim_key
from tests import regions
from tests.engines import EngineProcess, engine_alive, wait_until
from tests.regions import DATACENTERS
from tests.workflows import lines

pytestmark = [pytest.mark.cassandra, pytest.mark.slow]

TTL = 2.0
GRACE = 2.0


def reopen(keyspace: str, region: str) -> Store:
    """A store of ``region`` once its node, just restarted, answers its driver."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return open_store(regions.regions_url(keyspace, region))
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def region_engine(keyspace: str, region: str, name: str, folder: Path, *,
                  concurrency: int = 4, lease_ttl: float = TTL) -> EngineProcess:
    return EngineProcess(regions.regions_url(keyspace, region), name, folder,
                         lease_ttl=lease_ttl,
                         concurrency=concurrency, sweep_interval=0.2,
                         extra=("--region", region, "--region-takeover-grace", str(GRACE)))


def history(store: Store, workflow_id: str) -> list[Any]:
    return events_of(store, f"workflow-{workflow_id}")


def finished(store: Store, workflow_id: str) -> bool:
    return any(isinstance(e, ev.WorkflowSucceeded) for e in history(store, workflow_id))


def owners(store: Store, workflow_id: str) -> list[tuple[str, str | None, int]]:
    return [(e.engine, e.region, e.epoch) for e in history(store, workflow_id)
            if isinstance(e, ev.WorkflowOwned)]


def test_a_workflow_whose_region_lost_its_engine_is_taken_over_by_another_region_once(
        stores: dict[str, Store], keyspace: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    with region_engine(keyspace, "dc1", "e-dc1", tmp_path) as dc1, \
            region_engine(keyspace, "dc2", "e-dc2", tmp_path):
        wait_until(lambda: engine_alive(stores["dc1"], "e-dc1", "dc1")
                   and engine_alive(stores["dc2"], "e-dc2", "dc2"), timeout=60)
        workflow = start_workflow(stores["dc1"], "test.chain",
                                  {"tasks": 8, "effects": str(effects), "sleep": 0.4})
        wait_until(lambda: len(lines(effects)) >= 3, timeout=60)
        dc1.kill()  # kill -9: its leases run out, nobody of dc1 is left
        wait_until(lambda: finished(stores["dc2"], workflow), timeout=90)

    events = history(stores["dc1"], workflow)
    assert isinstance(events[0], ev.WorkflowStarted) and events[0].home_region == "dc1"
    assert [(engine, region) for engine, region, _ in owners(stores["dc1"], workflow)] == [
        ("e-dc1", "dc1"), ("e-dc2", "dc2")]
    handovers = [e for e in events if isinstance(e, ev.WorkflowTakenOver)]
    assert [(h.from_region, h.to_region, h.engine, h.home_region) for h in handovers] == [
        ("dc1", "dc2", "e-dc2", "dc1")]
    taken_at = events.index(handovers[0])
    assert all(e.engine == "e-dc1" for e in events[:taken_at]
               if isinstance(e, ev.TaskStarted))
    assert Counter(lines(effects)) == Counter(f"t{i:03d}" for i in range(8))  # each once


def test_engines_of_three_regions_racing_for_global_workflows_never_share_an_epoch(
        stores: dict[str, Store], keyspace: str, tmp_path: Path) -> None:
    count = 200
    effects = tmp_path / "effects"
    effects.mkdir()
    engines = [region_engine(keyspace, region, f"e-{region}", tmp_path, lease_ttl=6)
               for region in DATACENTERS]
    try:
        with ThreadPoolExecutor(6) as starting:  # commands in all three regions at once
            workflows = list(starting.map(
                lambda i: start_workflow(stores[DATACENTERS[i % 3]], "test.chain",
                                         {"tasks": 1, "effects": str(effects / f"w{i:04d}")},
                                         homed=False, workflow_id=f"w{i:04d}"),
                range(count)))
        unfinished = set(workflows)

        def all_finished() -> bool:
            unfinished.difference_update([w for w in list(unfinished)
                                          if finished(stores["dc1"], w)])
            return not unfinished

        with contextlib.suppress(AssertionError):  # what did not finish fails below
            wait_until(all_finished, timeout=240, poll=1)
    finally:
        for engine in engines:
            engine.stop()

    epochs: dict[tuple[str, int], set[str]] = {}
    regions_owning = Counter[str | None]()
    for workflow in workflows:
        events = history(stores["dc1"], workflow)
        assert sum(isinstance(e, ev.WorkflowSucceeded) for e in events) <= 1
        for owner, region, epoch in owners(stores["dc1"], workflow):
            epochs.setdefault((workflow, epoch), set()).add(owner)
            regions_owning[region] += 1
    assert all(len(engines_of_epoch) == 1 for engines_of_epoch in epochs.values())
    assert all(len(lines(effects / w)) <= 1 for w in workflows)  # no effect twice
    assert set(regions_owning) == set(DATACENTERS)  # it was a race between the regions
    assert all(lines(effects / w) == ["t000"] and finished(stores["dc1"], w)
               for w in workflows)  # each finished once


def test_with_dc3_gone_dc1_and_dc2_take_its_workflows_over_and_dc3_works_again_once_back(
        stores: dict[str, Store], keyspace: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    effects = {n: tmp_path / f"effects-{n}" for n in range(6)}
    dc3 = region_engine(keyspace, "dc3", "e-dc3", tmp_path)
    others = [region_engine(keyspace, region, f"e-{region}", tmp_path)
              for region in ("dc1", "dc2")]
    try:
        wait_until(lambda: all(engine_alive(stores[r], f"e-{r}", r) for r in DATACENTERS),
                   timeout=60)
        workflows = {n: start_workflow(stores["dc3"], "test.chain",
                                       {"tasks": 3, "effects": str(path), "gate": str(gate)})
                     for n, path in effects.items()}
        wait_until(lambda: all(owners(stores["dc3"], w) for w in workflows.values()),
                   timeout=60)
        assert {o[0] for w in workflows.values() for o in owners(stores["dc3"], w)} == {
            "e-dc3"}  # dc1 and dc2 left dc3's work alone while dc3 had an engine
        dc3.kill()
        regions.kill("dc3")
        try:
            gate.touch()
            wait_until(lambda: all(finished(stores["dc1"], w) for w in workflows.values()),
                       timeout=120, poll=0.5)
            for n, workflow in workflows.items():
                assert lines(effects[n]) == ["t000", "t001", "t002"]  # nothing lost, once
                took = [e for e in history(stores["dc1"], workflow)
                        if isinstance(e, ev.WorkflowTakenOver)]
                assert [(t.from_region, t.home_region) for t in took] == [("dc3", "dc3")]
                assert took[0].to_region in ("dc1", "dc2")
        finally:
            regions.restart("dc3")

        back = reopen(keyspace, "dc3")
        try:
            with region_engine(keyspace, "dc3", "e-dc3-again", tmp_path):
                # Until dc1 and dc2 see an engine of dc3 again, dc3's new work is theirs.
                wait_until(lambda: all(engine_alive(stores[r], "e-dc3-again", "dc3")
                                       for r in ("dc1", "dc2")), timeout=60)
                again = tmp_path / "effects-again"
                workflow = start_workflow(back, "test.chain",
                                          {"tasks": 2, "effects": str(again)})
                wait_until(lambda: finished(back, workflow), timeout=120, poll=0.5)
                assert [o[:2] for o in owners(back, workflow)] == [("e-dc3-again", "dc3")]
                assert lines(again) == ["t000", "t001"]
        finally:
            back.close()
    finally:
        for engine in [dc3, *others]:
            if engine.process.poll() is None:
                engine.stop()


def test_a_regions_schedulers_claim_its_hosts_region_locally_and_no_other_region_can(
        stores: dict[str, Store]) -> None:
    inventory = [HostInventory(f"h{n}-{uuid.uuid4().hex[:6]}", 4, 8192) for n in range(2)]
    in_dc1 = [Scheduler(stores["dc1"], inventory, region="dc1") for _ in range(3)]
    requests = [[NodeRequest(f"{n}-{i}", Flavor("small", 2, 4096)) for i in range(2)]
                for n in range(3)]

    def place(pair: tuple[Scheduler, list[NodeRequest]]) -> int:
        try:
            return len(pair[0].place(pair[1]))
        except NoValidHost:
            return 0

    with ThreadPoolExecutor(3) as pool:  # six nodes of two vcpus race for eight vcpus
        placed = sum(pool.map(place, zip(in_dc1, requests, strict=True)))
    used = [stores["dc1"].get_claim(region_claim_key("dc1", f"host:{h.name}:vcpus")).used
            for h in inventory]
    assert all(u <= 4 for u in used) and sum(used) == 2 * placed >= 4  # never overcommitted
    with pytest.raises(ForeignRegion):  # dc1's hosts are dc1's, even to dc2's engines
        Scheduler(stores["dc2"], [HostInventory(inventory[0].name, 8, 16384)], region="dc1")
