"""Leases give single ownership; fenced appends make a stale owner unable to write."""

from __future__ import annotations

import time
import uuid

import pytest

from sahara_es.store import LeaseHeld, LeaseLost, LeaseState, Store
from tests.factories import events, new_stream


def resource() -> str:
    return f"owned-{uuid.uuid4().hex}"


def test_a_free_resource_is_acquired_at_epoch_one(store: Store) -> None:
    lease = store.acquire_lease(resource(), "engine-a", ttl=10)
    assert lease.epoch == 1
    assert lease.owner == "engine-a"
    assert lease.expires_at > time.time() + 9
    assert store.get_lease(lease.resource) == lease


def test_a_held_lease_cannot_be_taken_by_another_owner(store: Store) -> None:
    lease = store.acquire_lease(resource(), "engine-a", ttl=10)
    with pytest.raises(LeaseHeld) as held:
        store.acquire_lease(lease.resource, "engine-b", ttl=10)
    assert held.value.owner == "engine-a"


def test_the_owner_re_acquiring_renews_with_the_same_epoch(store: Store) -> None:
    lease = store.acquire_lease(resource(), "engine-a", ttl=10)
    again = store.acquire_lease(lease.resource, "engine-a", ttl=20)
    assert again.epoch == lease.epoch
    assert again.expires_at > lease.expires_at


def test_renewing_extends_the_lease(store: Store) -> None:
    lease = store.acquire_lease(resource(), "engine-a", ttl=1)
    renewed = store.renew_lease(lease, ttl=30)
    assert renewed.epoch == lease.epoch
    assert store.get_lease(lease.resource).expires_at == pytest.approx(renewed.expires_at)


def test_an_expired_lease_goes_to_the_next_owner_with_a_higher_epoch(store: Store) -> None:
    lease = store.acquire_lease(resource(), "engine-a", ttl=0.3)
    time.sleep(0.4)
    taken = store.acquire_lease(lease.resource, "engine-b", ttl=10)
    assert taken.epoch == lease.epoch + 1
    with pytest.raises(LeaseLost):
        store.renew_lease(lease, ttl=10)


def test_a_released_lease_is_free_at_once(store: Store) -> None:
    lease = store.acquire_lease(resource(), "engine-a", ttl=60)
    store.release_lease(lease)
    assert store.get_lease(lease.resource).state is LeaseState.RELEASED
    with pytest.raises(LeaseLost):
        store.renew_lease(lease, ttl=10)
    assert store.acquire_lease(lease.resource, "engine-b", ttl=10).epoch == 2


def test_releasing_a_lease_already_lost_changes_nothing(store: Store) -> None:
    lease = store.acquire_lease(resource(), "engine-a", ttl=0.2)
    time.sleep(0.3)
    taken = store.acquire_lease(lease.resource, "engine-b", ttl=10)
    store.release_lease(lease)
    assert store.get_lease(lease.resource) == taken


def test_a_deleted_lease_is_no_longer_listed(store: Store) -> None:
    lease = store.acquire_lease(resource(), "engine-a", ttl=60)
    store.delete_lease(lease)
    assert store.get_lease(lease.resource) is None
    assert lease.resource not in {listed.resource for listed in store.list_leases()}


def test_deleting_a_lease_already_lost_changes_nothing(store: Store) -> None:
    lease = store.acquire_lease(resource(), "engine-a", ttl=0.2)
    time.sleep(0.3)
    taken = store.acquire_lease(lease.resource, "engine-b", ttl=10)
    store.delete_lease(lease)
    assert store.get_lease(lease.resource) == taken


def test_a_stale_owner_cannot_append_after_its_lease_was_deleted_and_taken_anew(
    store: Store,
) -> None:
    stream = new_stream("owned")
    old = store.acquire_lease(stream, "engine-a", ttl=0.2)
    store.fence(stream, old)
    time.sleep(0.3)
    newer = store.acquire_lease(stream, "engine-b", ttl=10)
    store.fence(stream, newer)
    store.delete_lease(newer)
    again = store.acquire_lease(stream, "engine-a", ttl=10)  # epoch 1 again
    with pytest.raises(LeaseLost):
        store.fence(stream, again)
    with pytest.raises(LeaseLost):
        store.append(stream, events(1), 0, lease=again)


def test_leases_are_listed(store: Store) -> None:
    lease = store.acquire_lease(resource(), "engine-a", ttl=10)
    assert lease in list(store.list_leases())


def test_a_fenced_append_succeeds_while_its_epoch_is_current(store: Store) -> None:
    stream = new_stream("owned")
    lease = store.acquire_lease(stream, "engine-a", ttl=10)
    store.fence(stream, lease)
    assert store.append(stream, events(2), 0, lease=lease) == 2
    assert store.append(stream, events(1), 2, lease=lease) == 3


def test_a_stale_owner_cannot_append_once_the_new_owner_fenced(store: Store) -> None:
    stream = new_stream("owned")
    old = store.acquire_lease(stream, "engine-a", ttl=0.2)
    version = store.append(stream, events(3), 0, lease=old)
    time.sleep(0.3)
    new = store.acquire_lease(stream, "engine-b", ttl=10)
    store.fence(stream, new)

    with pytest.raises(LeaseLost):
        store.append(stream, events(1), version, lease=old)
    with pytest.raises(LeaseLost):
        store.fence(stream, old)
    assert store.append(stream, events(1), version, lease=new) == version + 1
    assert store.stream_version(stream) == version + 1


def test_the_new_owners_first_append_fences_the_stream_too(store: Store) -> None:
    stream = new_stream("owned")
    old = store.acquire_lease(stream, "engine-a", ttl=0.2)
    store.append(stream, events(1), 0, lease=old)
    time.sleep(0.3)
    new = store.acquire_lease(stream, "engine-b", ttl=10)
    store.append(stream, events(1), 1, lease=new)

    with pytest.raises(LeaseLost):
        store.append(stream, events(1), 2, lease=old)


def test_fencing_holds_across_partition_boundaries(store: Store) -> None:
    stream = new_stream("owned")
    old = store.acquire_lease(stream, "engine-a", ttl=0.5)
    version = 0
    while version < 95:
        version = store.append(stream, events(19), version, lease=old)
    time.sleep(0.6)
    new = store.acquire_lease(stream, "engine-b", ttl=10)
    store.fence(stream, new)

    with pytest.raises(LeaseLost):  # 95 + 10 crosses into the next 100-event partition
        store.append(stream, events(10), version, lease=old)
    version = store.append(stream, events(10), version, lease=new)
    with pytest.raises(LeaseLost):
        store.append(stream, events(1), version, lease=old)
    # An append without a lease (a user's command) keeps the fence in force.
    version = store.append(stream, events(100), version)
    with pytest.raises(LeaseLost):
        store.append(stream, events(1), version, lease=old)
    assert [e.version for e in store.read(stream)] == list(range(1, version + 1))


def test_fencing_a_stream_that_does_not_exist_yet_keeps_stale_owners_out(store: Store) -> None:
    stream = new_stream("owned")
    old = store.acquire_lease(stream, "engine-a", ttl=0.2)
    time.sleep(0.3)
    new = store.acquire_lease(stream, "engine-b", ttl=10)
    store.fence(stream, new)

    with pytest.raises(LeaseLost):
        store.append(stream, events(1), 0, lease=old)
    assert store.append(stream, events(1), 0, lease=new) == 1


def test_an_offered_lease_is_free_and_taken_at_epoch_one_once(store: Store) -> None:
    name = resource()
    assert store.offer_lease(name) is True
    offered = store.get_lease(name)
    assert offered is not None and offered.epoch == 0 and offered.expired(time.time())
    assert store.offer_lease(name) is False  # one there already: left as it is
    taken = store.acquire_lease(name, "engine-a", ttl=10)
    assert taken.epoch == 1
    assert store.offer_lease(name) is False and store.get_lease(name) == taken
    with pytest.raises(LeaseHeld):
        store.acquire_lease(name, "engine-b", ttl=10)
