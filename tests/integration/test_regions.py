"""Three regions on one replicated keyspace (doc/regions.rst), against a real three-datacenter
Cassandra (``tools/cassandra-regions``: one node per datacenter, started once per session),
each test in the session's keyspace emptied for it, with no delay added between the datacenters.

- Ownership is linearizable across regions: engines of three regions racing for the same
  workflows (leases, fences and leased appends at SERIAL) never make two owners of one epoch,
  and every append is reported as it happened.
- Region-local claims (LOCAL_SERIAL) raced in each region never overcommit, and no other
  region writes them; global claims raced from every region (SERIAL) do not either.
- The feed delivers every event, appended in all three regions, to consumers in regions
  other than the relay's: nothing skipped.
- With dc3's node killed, dc1 and dc2 go on appending, taking workflows over and claiming;
  dc3's process can do nothing; restarted, dc3 has every event it missed and works again.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from sahara_es.events import NewEvent, RecordedEvent
from sahara_es.store import (
    ClaimRejected,
    ConcurrencyConflict,
    ForeignRegion,
    Lease,
    LeaseHeld,
    LeaseLost,
    Store,
    StoreError,
    Unavailable,
    open_store,
    region_claim_key,
)
from tests import regions
from tests.regions import DATACENTERS

pytestmark = [pytest.mark.cassandra, pytest.mark.slow]


def eventually(check: Callable[[], bool], timeout: float = 60.0,
               found: Callable[[], object] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {found()}"
        time.sleep(0.2)


def owned(owner: str, epoch: int) -> NewEvent:
    return NewEvent(type="Owned", data={"owner": owner, "epoch": epoch})


def leased_append(store: Store, stream: str, event: NewEvent, lease: Lease) -> int:
    """Append after the stream's version, read again after a conflict (this region's copy of
    the stream may be behind: the append's LWT is what checks)."""
    version = store.stream_version(stream)
    for _ in range(10):
        try:
            return store.append(stream, [event], version, lease=lease)
        except ConcurrencyConflict as conflict:
            version = conflict.actual_version or store.stream_version(stream)
    raise AssertionError(f"{stream} kept moving")


def take_over(store: Store, workflow: str, owner: str) -> Lease:
    """What a new owner does: take the lease, fence the stream, then act."""
    lease = store.acquire_lease(workflow, owner, ttl=30)
    store.fence(workflow, lease)
    return lease


def test_engines_of_three_regions_racing_for_workflows_never_make_two_owners_of_an_epoch(
        stores: dict[str, Store]) -> None:
    workflows = [f"workflow-{uuid.uuid4().hex}" for _ in range(30)]
    applied: list[tuple[str, uuid.UUID, int]] = []
    refused: list[uuid.UUID] = []
    lock = threading.Lock()

    def engine(region: str, number: int) -> None:
        store, me = stores[region], f"engine-{region}-{number}"
        order = random.Random(f"{region}{number}").sample(workflows * 2, len(workflows) * 2)
        for workflow in order:
            try:
                lease = take_over(store, workflow, me)
            except (LeaseHeld, LeaseLost):
                continue
            event = owned(me, lease.epoch)
            try:
                version = leased_append(store, workflow, event, lease)
                with lock:
                    applied.append((workflow, event.event_id, version))
            except LeaseLost:
                with lock:
                    refused.append(event.event_id)
            finally:
                store.release_lease(lease)

    with ThreadPoolExecutor(max_workers=6) as pool:
        for future in [pool.submit(engine, region, number)
                       for region in DATACENTERS for number in (1, 2)]:
            future.result()

    newest = defaultdict(int)
    for workflow, _, version in applied:
        newest[workflow] = max(newest[workflow], version)
    histories: dict[str, list[RecordedEvent]] = {}

    def replicated() -> bool:
        histories.update({w: list(stores["dc1"].read(w)) for w in workflows})
        return all(len(histories[w]) >= newest[w] for w in workflows)

    eventually(replicated)
    owners_by_epoch: dict[tuple[str, int], set[str]] = defaultdict(set)
    regions_by_workflow: dict[str, set[str]] = defaultdict(set)
    for workflow, history in histories.items():
        epochs = [event.data["epoch"] for event in history]
        assert epochs == sorted(epochs), f"{workflow}: an older epoch appended after a newer"
        for event in history:
            owners_by_epoch[(workflow, event.data["epoch"])].add(event.data["owner"])
            regions_by_workflow[workflow].add(event.data["owner"].split("-")[1])
    assert all(len(owners) == 1 for owners in owners_by_epoch.values()), owners_by_epoch
    # Outcomes reported as they happened: every append reported applied is where it said,
    # none reported refused is anywhere.
    where = {(w, event.event_id): event.version for w, h in histories.items() for event in h}
    assert all(where.get((w, event_id)) == version for w, event_id, version in applied)
    assert not set(refused) & {event_id for _, event_id in where}
    assert len(where) == len(applied)
    # The race was a race: workflows changed hands between regions.
    assert sum(1 for found in regions_by_workflow.values() if len(found) > 1) >= 5


def test_region_local_claims_never_overcommit_and_only_their_region_writes_them(
        stores: dict[str, Store], keyspace: str) -> None:
    host = uuid.uuid4().hex
    local = {region: region_claim_key(region, f"host:{host}:vcpus") for region in DATACENTERS}
    shared = f"quota:{host}:instances"  # a global claim: SERIAL, from any region
    for region in DATACENTERS:
        stores[region].define_claim(local[region], 10)
    stores["dc1"].define_claim(shared, 10)
    granted: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()

    def claimant(region: str, number: int) -> None:
        store = stores[region]
        for i in range(8):
            holder = f"instance-{region}-{number}-{i}"
            for key in (local[region], shared):
                try:
                    store.claim_with_retry(key, holder, 1)
                except ClaimRejected:
                    continue
                with lock:
                    granted[key].append(holder)

    with ThreadPoolExecutor(max_workers=9) as pool:
        for future in [pool.submit(claimant, region, number)
                       for region in DATACENTERS for number in (1, 2, 3)]:
            future.result()

    for region in DATACENTERS:
        claim = stores[region].get_claim(local[region])
        assert claim.used == claim.capacity == 10
        assert sorted(claim.holders) == sorted(granted[local[region]])
    claim = stores["dc2"].get_claim(shared)
    assert claim.used == 10
    assert sorted(claim.holders) == sorted(granted[shared])
    # No other region changes a region's claims (two regions at LOCAL_SERIAL would both
    # win); they read its copy.
    for region in DATACENTERS:
        for other in DATACENTERS:
            if other == region:
                continue
            store = stores[other]
            with pytest.raises(ForeignRegion):
                store.claim(local[region], "intruder", 1, 11)
            with pytest.raises(ForeignRegion):
                store.release_claim(local[region], next(iter(granted[local[region]])), 11)
            with pytest.raises(ForeignRegion):
                store.define_claim(local[region], 100)
            eventually(lambda s=store, k=local[region]: s.get_claim(k).used == 10)
    # Nor does a process configured to write global claims at LOCAL_SERIAL: it is refused.
    with pytest.raises(StoreError, match="claims_serial must be SERIAL"):
        open_store(regions.regions_url(keyspace, "dc2", claims_serial="LOCAL_SERIAL"))


def test_the_feed_delivers_every_event_of_three_regions_to_consumers_in_other_regions(
        stores: dict[str, Store], keyspace: str) -> None:
    consumers = {region: open_store(regions.regions_url(keyspace, region, feed_relay="off"))
                 for region in ("dc2", "dc3")}
    committed: set[tuple[str, int]] = set()
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()

    def writer(region: str) -> None:
        store = stores[region]
        streams = {f"cluster-{region}-{uuid.uuid4().hex}": 0 for _ in range(6)}
        rng = random.Random(region)
        for _ in range(40):
            stream = rng.choice(list(streams))
            batch = [NewEvent(type="Step", data={"n": i}) for i in range(rng.randint(1, 3))]
            streams[stream] = store.append(stream, batch, streams[stream])
            with lock:
                committed.update((stream, v) for v in range(streams[stream] - len(batch) + 1,
                                                            streams[stream] + 1))

    def relay() -> None:  # the relay runs in dc1's process, which reads the feed
        position = None
        while writing.is_set():
            got = stores["dc1"].read_feed(position)
            position = got[-1].position if got else position
            time.sleep(0.05)

    relaying = threading.Thread(target=relay)
    relaying.start()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            for future in [pool.submit(writer, region) for region in DATACENTERS]:
                future.result()
        for region, consumer in consumers.items():
            delivered: list[RecordedEvent] = []

            def caught_up(consumer: Store = consumer,
                          delivered: list[RecordedEvent] = delivered) -> bool:
                after = delivered[-1].position if delivered else None
                delivered.extend(consumer.read_feed(after))
                return {(e.stream_id, e.version) for e in delivered} >= committed

            eventually(caught_up, timeout=90)
            positions = [int(event.position) for event in delivered]
            assert positions == list(range(1, len(positions) + 1)), f"{region}: a hole"
            seen: dict[str, int] = {}
            for event in delivered:  # each stream in version order, first copies included
                if event.version > seen.get(event.stream_id, 0):
                    assert event.version == seen.get(event.stream_id, 0) + 1, region
                    seen[event.stream_id] = event.version
    finally:
        writing.clear()
        relaying.join()
        for consumer in consumers.values():
            consumer.close()


def test_with_dc3_gone_dc1_and_dc2_go_on_and_dc3_catches_up_when_it_is_back(
        stores: dict[str, Store], keyspace: str) -> None:
    workflows = [f"workflow-{uuid.uuid4().hex}" for _ in range(6)]
    for workflow in workflows:  # owned by dc3's engine to begin with
        lease = take_over(stores["dc3"], workflow, "engine-dc3")
        leased_append(stores["dc3"], workflow, owned("engine-dc3", lease.epoch), lease)
        stores["dc3"].release_lease(lease)
    host = uuid.uuid4().hex
    local = {region: region_claim_key(region, f"host:{host}:vcpus") for region in DATACENTERS}
    for region in DATACENTERS:
        stores[region].define_claim(local[region], 100)
    shared = f"quota:{host}:instances"
    stores["dc1"].define_claim(shared, 100)

    regions.kill("dc3")
    try:
        for round_number in range(3):
            for index, workflow in enumerate(workflows):
                region = ("dc1", "dc2")[(index + round_number) % 2]
                store, me = stores[region], f"engine-{region}"
                lease = take_over(store, workflow, me)
                leased_append(store, workflow, owned(me, lease.epoch), lease)
                store.release_lease(lease)
                store.claim_with_retry(local[region], f"{workflow}-{round_number}", 1)
                store.claim_with_retry(shared, f"{workflow}-{round_number}", 1)
        # dc3's own processes have no datacenter to talk to: they stop, nothing more.
        with pytest.raises(Unavailable):
            stores["dc3"].append(workflows[0], [owned("engine-dc3", 99)], 0)
    finally:
        regions.restart("dc3")

    back = open_store(regions.regions_url(keyspace, "dc3"))
    try:
        newest = {workflow: stores["dc1"].stream_version(workflow) for workflow in workflows}
        assert all(version == 4 for version in newest.values())
        eventually(lambda: all(back.stream_version(w) == newest[w] and
                               len(list(back.read(w))) == newest[w] for w in workflows),
                   timeout=120, found=lambda: [(back.stream_version(w), [
                       (e.version, e.data) for e in back.read(w)]) for w in workflows])
        claimed_in_dc1 = len(workflows) * 3 // 2  # every other workflow of each round
        eventually(lambda: back.get_claim(local["dc1"]).used == claimed_in_dc1, timeout=60)
        # dc3's engines work again: they take a workflow over and claim in their region.
        lease = take_over(back, workflows[0], "engine-dc3")
        assert leased_append(back, workflows[0], owned("engine-dc3", lease.epoch), lease) == 5
        assert back.claim_with_retry(local["dc3"], "after-restart", 1).used == 1
        assert back.claim_with_retry(shared, "after-restart", 1).used == len(workflows) * 3 + 1
    finally:
        back.close()
