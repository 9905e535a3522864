"""The scheduler claims host capacity and keeps alternates; quotas are claims per project.

Every test runs on each store. Host, instance and project names carry a uuid suffix because
the store is shared by every test of the session.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from sahara_es.infra.base import Flavor, HostInventory
from sahara_es.infra.placement import (
    NodeRequest,
    NoValidHost,
    Placement,
    Scheduler,
    host_claim_key,
)
from sahara_es.infra.quotas import (
    QuotaExceeded,
    QuotaLimits,
    Quotas,
    quota_claim_key,
)
from sahara_es.store import Store

SMALL = Flavor("m1.small", vcpus=2, ram_mb=4096)
LARGE = Flavor("m1.large", vcpus=8, ram_mb=16384)

T = TypeVar("T")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def hosts(count: int, vcpus: int = 8, ram_mb: int = 16384) -> list[HostInventory]:
    suffix = uuid.uuid4().hex[:8]
    return [HostInventory(f"hv{i}-{suffix}", vcpus, ram_mb) for i in range(count)]


def held(store: Store, host: str) -> dict[str, dict[str, int]]:
    """Who holds what on ``host``, per resource."""
    return {resource: store.get_claim(host_claim_key(host, resource)).holders
            for resource in ("vcpus", "ram_mb")}


def nothing_held(store: Store, inventory: list[HostInventory]) -> bool:
    return all(store.get_claim(host_claim_key(h.name, r)).used == 0
               for h in inventory for r in ("vcpus", "ram_mb"))


def run_concurrently(count: int, body: Callable[[int], T]) -> list[T]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(body, range(count)))


# -- placing ----------------------------------------------------------------------------------


def test_nodes_are_placed_on_hosts_with_room_and_keep_the_others_as_alternates(
    store: Store,
) -> None:
    inventory = hosts(3)
    scheduler = Scheduler(store, inventory)
    instance = unique("master")

    [placement] = scheduler.place([NodeRequest(instance, SMALL)])

    names = {h.name for h in inventory}
    assert placement.instance == instance
    assert placement.host in names
    assert set(placement.alternates) == names - {placement.host}
    assert (placement.vcpus, placement.ram_mb) == (2, 4096)
    assert held(store, placement.host) == {"vcpus": {instance: 2}, "ram_mb": {instance: 4096}}


def test_the_host_with_the_most_free_ram_is_chosen_so_that_load_spreads(store: Store) -> None:
    inventory = hosts(3)
    scheduler = Scheduler(store, inventory)

    placements = scheduler.place([NodeRequest(unique("worker"), SMALL) for _ in range(3)])

    assert {p.host for p in placements} == {h.name for h in inventory}


def test_a_full_host_is_skipped_and_never_an_alternate(store: Store) -> None:
    inventory = hosts(2)
    scheduler = Scheduler(store, inventory)
    [filler] = scheduler.place([NodeRequest(unique("big"), LARGE)])  # fills one host

    [placement] = scheduler.place([NodeRequest(unique("small"), SMALL)])

    assert placement.host != filler.host
    assert placement.alternates == []


def test_nothing_fits_raises_no_valid_host_naming_what_was_asked_and_what_is_free(
    store: Store,
) -> None:
    inventory = hosts(1, vcpus=4, ram_mb=8192)
    scheduler = Scheduler(store, inventory)
    instance = unique("huge")

    with pytest.raises(NoValidHost) as refused:
        scheduler.place([NodeRequest(instance, LARGE)])

    message = str(refused.value)
    assert instance in message and "8 vcpus" in message and "16384 MB" in message
    assert f"{inventory[0].name}: 4 vcpus, 8192 MB free" in message
    assert refused.value.retryable is False


def test_placing_an_instance_that_already_holds_a_host_returns_that_placement(
    store: Store,
) -> None:
    inventory = hosts(3)
    scheduler = Scheduler(store, inventory)
    request = NodeRequest(unique("worker"), SMALL)
    [first] = scheduler.place([request])

    [again] = Scheduler(store, inventory).place([request])  # a resumed workflow retries

    assert again.host == first.host
    assert held(store, first.host)["vcpus"] == {request.instance: 2}
    others = [h.name for h in inventory if h.name != first.host]
    assert all(not held(store, host)["vcpus"] for host in others)


def test_a_half_claimed_host_left_by_a_dead_scheduler_is_completed(store: Store) -> None:
    inventory = hosts(2)
    scheduler = Scheduler(store, inventory)
    request = NodeRequest(unique("worker"), SMALL)
    host = inventory[1].name
    store.claim_with_retry(host_claim_key(host, "vcpus"), request.instance, 2)  # then it died

    [placement] = scheduler.place([request])

    assert placement.host == host
    assert held(store, host) == {"vcpus": {request.instance: 2},
                                 "ram_mb": {request.instance: 4096}}


def test_rebuilding_the_scheduler_does_not_touch_unchanged_inventory_nor_shrink_below_use(
    store: Store,
) -> None:
    inventory = hosts(1)
    Scheduler(store, inventory).place([NodeRequest(unique("big"), LARGE)])
    before = store.get_claim(host_claim_key(inventory[0].name, "vcpus"))

    Scheduler(store, inventory)
    assert store.get_claim(before.key) == before  # no generation bumped for nothing

    Scheduler(store, [HostInventory(inventory[0].name, 2, 16384)])  # the host shrank
    assert store.get_claim(before.key).capacity == 8  # not below what its instances use


# -- anti-affinity ------------------------------------------------------------------------------


def test_an_anti_affinity_group_is_spread_on_distinct_hosts(store: Store) -> None:
    inventory = hosts(3, vcpus=64, ram_mb=262144)
    scheduler = Scheduler(store, inventory)
    group = [NodeRequest(unique("datanode"), SMALL, "datanode") for _ in range(3)]
    free = [NodeRequest(unique("master"), SMALL) for _ in range(3)]

    placements = scheduler.place(group + free)

    assert len({p.host for p in placements[:3]}) == 3
    assert all(p.alternates == [] for p in placements[:3])  # every other host is the group's


def test_hosts_the_group_already_uses_are_avoided(store: Store) -> None:
    inventory = hosts(3, vcpus=64, ram_mb=262144)
    scheduler = Scheduler(store, inventory)
    existing = {inventory[0].name, inventory[1].name}

    [placement] = scheduler.place([NodeRequest(unique("datanode"), SMALL, "datanode")],
                                  avoid={"datanode": existing})

    assert placement.host == inventory[2].name


def test_a_group_larger_than_the_hosts_is_refused_and_nothing_stays_claimed(
    store: Store,
) -> None:
    inventory = hosts(2, vcpus=64, ram_mb=262144)
    scheduler = Scheduler(store, inventory)
    requests = [NodeRequest(unique("master"), SMALL)] + [
        NodeRequest(unique("datanode"), SMALL, "datanode") for _ in range(3)]

    with pytest.raises(NoValidHost, match=r"'datanode' needs 3 distinct hosts.* only 2 hosts"):
        scheduler.place(requests)

    assert nothing_held(store, inventory)


def test_a_group_that_fits_on_too_few_hosts_fails_whole_and_says_so(store: Store) -> None:
    inventory = hosts(3)
    scheduler = Scheduler(store, inventory)
    scheduler.place([NodeRequest(unique("big"), LARGE)])  # one host full
    requests = [NodeRequest(unique("datanode"), SMALL, "datanode") for _ in range(3)]

    with pytest.raises(NoValidHost) as refused:
        scheduler.place(requests)

    assert "'datanode' needs 3 distinct hosts" in str(refused.value)
    assert "2 are already used by the group and 0 of the others have room" in str(refused.value)
    assert sum(store.get_claim(host_claim_key(h.name, "vcpus")).used for h in inventory) == 8


# -- alternates and release ---------------------------------------------------------------------


def test_retry_on_an_alternate_moves_the_claim(store: Store) -> None:
    inventory = hosts(3)
    scheduler = Scheduler(store, inventory)
    [placement] = scheduler.place([NodeRequest(unique("worker"), SMALL)])

    moved = scheduler.retry_on_alternate(placement)

    assert moved.host == placement.alternates[0]
    assert moved.alternates == placement.alternates[1:]
    assert held(store, placement.host) == {"vcpus": {}, "ram_mb": {}}
    assert held(store, moved.host)["ram_mb"] == {placement.instance: 4096}

    last = scheduler.retry_on_alternate(moved)
    with pytest.raises(NoValidHost, match="no alternate left"):
        scheduler.retry_on_alternate(last)
    assert nothing_held(store, inventory)


def test_an_alternate_filled_since_is_skipped(store: Store) -> None:
    inventory = hosts(3)
    scheduler = Scheduler(store, inventory)
    [placement] = scheduler.place([NodeRequest(unique("worker"), SMALL)])
    first_alternate = placement.alternates[0]
    store.claim_with_retry(host_claim_key(first_alternate, "vcpus"), unique("other"), 8)

    moved = scheduler.retry_on_alternate(Placement(placement.instance, placement.host,
                                                   placement.alternates))

    assert moved.host == placement.alternates[1]
    assert (moved.vcpus, moved.ram_mb) == (2, 4096)  # read from what the failed host held


def test_release_gives_the_claims_back_and_is_idempotent(store: Store) -> None:
    inventory = hosts(2)
    scheduler = Scheduler(store, inventory)
    [placement] = scheduler.place([NodeRequest(unique("worker"), SMALL)])

    scheduler.release(placement)
    scheduler.release(placement)
    scheduler.release(placement.instance, placement.host)

    assert nothing_held(store, inventory)


# -- racing schedulers ----------------------------------------------------------------------------


def test_twenty_schedulers_racing_for_too_little_capacity_never_overcommit(
    store: Store,
) -> None:
    inventory = hosts(4)  # room for 16 small nodes; 20 clusters of 3 ask for 60
    clusters = [[NodeRequest(unique(f"c{i}-master"), SMALL),
                 NodeRequest(unique(f"c{i}-datanode"), SMALL, "datanode"),
                 NodeRequest(unique(f"c{i}-datanode"), SMALL, "datanode")]
                for i in range(20)]

    def create(i: int) -> list[Placement] | NoValidHost:
        try:
            return Scheduler(store, inventory).place(clusters[i])
        except NoValidHost as refused:
            return refused

    outcomes = run_concurrently(20, create)

    placed = [o for o in outcomes if isinstance(o, list)]
    assert placed and len(placed) < 20
    for host in inventory:
        for resource in ("vcpus", "ram_mb"):
            claim = store.get_claim(host_claim_key(host.name, resource))
            assert claim.used <= claim.capacity
            assert sum(claim.holders.values()) == claim.used
    holders = {instance for h in inventory for instance in held(store, h.name)["vcpus"]}
    assert holders == {p.instance for cluster in placed for p in cluster}  # none half-placed
    for cluster in placed:
        assert cluster[1].host != cluster[2].host
        for p in cluster:
            assert held(store, p.host) and p.instance in held(store, p.host)["ram_mb"]


# -- quotas ---------------------------------------------------------------------------------------


def test_a_claim_within_quota_is_counted_and_a_release_returns_it(store: Store) -> None:
    quotas = Quotas(store)
    project, cluster = unique("project"), unique("cluster")

    quotas.claim(project, cluster, instances=3, cores=6, ram_mb=12288)
    quotas.claim(project, cluster, instances=3, cores=6, ram_mb=12288)  # a retry: once

    usage = quotas.usage(project)
    assert (usage["instances"].used, usage["instances"].limit) == (3, 20)
    assert (usage["cores"].used, usage["ram_mb"].free) == (6, 81920 - 12288)
    quotas.release(project, cluster)
    quotas.release(project, cluster)
    assert all(u.used == 0 for u in quotas.usage(project).values())


def test_over_quota_is_refused_with_a_clear_message_and_nothing_is_claimed(
    store: Store,
) -> None:
    project = unique("project")
    quotas = Quotas(store, overrides={project: QuotaLimits(instances=10, cores=8, ram_mb=8192)})
    quotas.claim(project, unique("cluster"), instances=1, cores=2, ram_mb=2048)

    with pytest.raises(QuotaExceeded) as refused:
        quotas.claim(project, unique("cluster"), instances=4, cores=8, ram_mb=4096)

    assert (refused.value.resource, refused.value.asked, refused.value.free,
            refused.value.limit) == ("cores", 8, 6, 8)
    assert "cores 8 asked, 6 free of a limit of 8" in str(refused.value)
    assert refused.value.retryable is False
    assert {r: u.used for r, u in quotas.usage(project).items()} == {
        "instances": 1, "cores": 2, "ram_mb": 2048}  # the instances claimed first went back


def test_limits_can_be_changed_per_project(store: Store) -> None:
    quotas = Quotas(store, defaults=QuotaLimits(instances=2))
    project = unique("project")
    assert quotas.limits(project) == QuotaLimits(instances=2)

    quotas.set_limits(project, QuotaLimits(instances=5, cores=10, ram_mb=1024))

    assert Quotas(store).limits(project) == QuotaLimits(5, 10, 1024)  # stored, not configured
    assert store.get_claim(quota_claim_key(project, "instances")).capacity == 5


def test_twenty_concurrent_claims_never_exceed_the_limit(store: Store) -> None:
    project = unique("project")
    Quotas(store).set_limits(project, QuotaLimits(instances=5, cores=40, ram_mb=81920))

    def create(i: int) -> bool:
        try:
            Quotas(store).claim(project, f"cluster-{i}", instances=1, cores=2, ram_mb=1024)
            return True
        except QuotaExceeded:
            return False

    granted = run_concurrently(20, create)

    usage = Quotas(store).usage(project)
    assert granted.count(True) == 5
    assert (usage["instances"].used, usage["cores"].used, usage["ram_mb"].used) == (5, 10, 5120)
    for resource in ("instances", "cores", "ram_mb"):
        claim = store.get_claim(quota_claim_key(project, resource))
        assert sum(claim.holders.values()) == claim.used
        assert len(claim.holders) == 5
