"""Claims never overcommit; unique names are reserved by one owner at a time; snapshots."""

from __future__ import annotations

import uuid

import pytest

from sahara_es.store import (
    ClaimRejected,
    ConcurrencyConflict,
    ForeignRegion,
    NameTaken,
    NotFound,
    Snapshot,
    Store,
    claim_region,
    region_claim_key,
)


def key() -> str:
    return f"host-{uuid.uuid4().hex}:vcpus"


def test_a_claim_is_granted_within_capacity_and_bumps_the_generation(store: Store) -> None:
    claim = store.define_claim(key(), capacity=8)
    granted = store.claim(claim.key, "instance-1", 3, claim.generation)
    assert granted.used == 3
    assert granted.free == 5
    assert granted.generation == claim.generation + 1
    assert granted.holders == {"instance-1": 3}
    assert store.get_claim(claim.key) == granted


def test_a_claim_beyond_capacity_is_rejected(store: Store) -> None:
    claim = store.define_claim(key(), capacity=4)
    claim = store.claim(claim.key, "a", 3, claim.generation)
    with pytest.raises(ClaimRejected):
        store.claim(claim.key, "b", 2, claim.generation)
    assert store.get_claim(claim.key).used == 3


def test_a_claim_on_a_stale_generation_is_a_conflict(store: Store) -> None:
    claim = store.define_claim(key(), capacity=4)
    store.claim(claim.key, "a", 1, claim.generation)
    with pytest.raises(ConcurrencyConflict):
        store.claim(claim.key, "b", 1, claim.generation)


def test_a_holder_claims_once_and_a_retry_returns_its_claim(store: Store) -> None:
    claim = store.define_claim(key(), capacity=4)
    first = store.claim_with_retry(claim.key, "a", 2)
    assert store.claim_with_retry(claim.key, "a", 2) == first
    with pytest.raises(ClaimRejected):
        store.claim(claim.key, "a", 1, first.generation)


def test_releasing_gives_back_what_the_holder_held(store: Store) -> None:
    claim = store.define_claim(key(), capacity=4)
    claim = store.claim(claim.key, "a", 3, claim.generation)
    released = store.release_claim(claim.key, "a", claim.generation)
    assert released.used == 0
    assert released.holders == {}
    assert store.release_claim(claim.key, "a", released.generation) == released


def test_capacity_can_be_changed_and_unknown_claims_are_not_found(store: Store) -> None:
    claim = store.define_claim(key(), capacity=4)
    resized = store.define_claim(claim.key, capacity=16)
    assert resized.capacity == 16
    assert resized.generation == claim.generation + 1
    with pytest.raises(NotFound):
        store.get_claim(key())


def test_a_name_is_reserved_by_one_owner(store: Store) -> None:
    project = uuid.uuid4().hex
    store.reserve_name(project, "cluster", "spark-1", "cluster-a")
    store.reserve_name(project, "cluster", "spark-1", "cluster-a")  # idempotent for its owner
    with pytest.raises(NameTaken) as taken:
        store.reserve_name(project, "cluster", "spark-1", "cluster-b")
    assert taken.value.owner_id == "cluster-a"
    store.reserve_name(project, "cluster-template", "spark-1", "template-a")  # another kind
    store.reserve_name(uuid.uuid4().hex, "cluster", "spark-1", "cluster-c")  # another project


def test_a_released_name_can_be_reserved_again(store: Store) -> None:
    project = uuid.uuid4().hex
    store.reserve_name(project, "cluster", "spark-1", "cluster-a")
    store.release_name(project, "cluster", "spark-1", "cluster-b")  # not the owner: no-op
    assert store.name_owner(project, "cluster", "spark-1") == "cluster-a"
    store.release_name(project, "cluster", "spark-1", "cluster-a")
    assert store.name_owner(project, "cluster", "spark-1") is None
    store.reserve_name(project, "cluster", "spark-1", "cluster-b")


def test_the_latest_snapshot_is_returned(store: Store) -> None:
    stream = f"cluster-{uuid.uuid4().hex}"
    assert store.latest_snapshot(stream) is None
    store.save_snapshot(Snapshot(stream, 100, {"size": 1}))
    store.save_snapshot(Snapshot(stream, 200, {"size": 2}))
    assert store.latest_snapshot(stream) == Snapshot(stream, 200, {"size": 2})


def test_a_region_claim_is_a_claim_of_its_own_region(store: Store) -> None:
    region = store.region or "dc1"
    key = region_claim_key(region, f"host-{uuid.uuid4().hex}:vcpus")
    assert claim_region(key) == region
    claim = store.define_claim(key, capacity=2)
    granted = store.claim_with_retry(claim.key, "a", 2)
    assert granted.key == key
    assert granted.used == 2
    with pytest.raises(ClaimRejected):
        store.claim(key, "b", 1, granted.generation)
    assert store.get_claim(key) == granted
    assert store.release_claim(key, "a", granted.generation).used == 0
    with pytest.raises(NotFound):  # not the global claim of the same name
        store.get_claim(key.split("/", 1)[1])


def test_only_its_region_changes_a_region_claim(store: Store) -> None:
    other = region_claim_key(f"not-{store.region}", f"host-{uuid.uuid4().hex}:vcpus")
    if store.region is None:  # a store on one site (SQLite): every region is local
        store.define_claim(other, capacity=2)
        assert store.claim_with_retry(other, "a", 1).used == 1
        return
    with pytest.raises(ForeignRegion):
        store.define_claim(other, capacity=2)
    with pytest.raises(ForeignRegion):
        store.claim(other, "a", 1, 1)
    with pytest.raises(NotFound):  # read, not changed: there is none
        store.get_claim(other)


@pytest.mark.parametrize("key", ["@/host:vcpus", "@dc1", "@dc 1/host", "@dc1/"])
def test_a_malformed_region_claim_key_is_refused(store: Store, key: str) -> None:
    with pytest.raises(ValueError):
        store.define_claim(key, capacity=1)
