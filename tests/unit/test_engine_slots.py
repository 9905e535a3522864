"""How an engine shares its task slots between projects (``engine/slots.py``)."""

from __future__ import annotations

from sahara_es.engine.slots import Share, Slots, round_robin


def test_one_project_holds_at_most_its_share_and_the_rest_stays_for_others() -> None:
    slots = Slots(total=8, per_project=4, reclaim=2)
    a, b = Share("a"), Share("b")
    assert slots.reserve(8, a) == 4
    assert slots.reserve(1, a) == 0
    assert slots.reserve(8, b) == 4
    assert slots.held() == {"a": 4, "b": 4}
    slots.release(4, a)
    assert slots.reserve(8, b) == 0  # b is at its share, whatever is free
    assert slots.free == 4


def test_work_without_a_project_is_not_limited() -> None:
    slots = Slots(total=8, per_project=4, reclaim=2)
    assert slots.reserve(10) == 8
    slots.release(8)
    assert slots.free == 8 and slots.held() == {}


def test_a_project_above_its_fair_part_waits_while_another_is_below_its_own() -> None:
    slots = Slots(total=6, per_project=6, reclaim=0)
    a, b, c = Share("a"), Share("b"), Share("c")
    assert slots.reserve(6, a) == 6  # alone: a may use everything up to its share
    assert slots.reserve(1, b) == 0  # b waits...
    slots.release(2, a)
    assert slots.reserve(2, a) == 0  # ...so a, above its fair 3, takes no more
    assert slots.reserve(3, b) == 2
    assert slots.reserve(1, c) == 0  # three projects now: a fair part is 2
    slots.release(1, a)
    assert slots.reserve(1, b) == 0  # b holds its 2; c waits below its own
    assert slots.reserve(1, c) == 1


def test_reclaiming_work_has_slots_of_its_own_beyond_a_full_share() -> None:
    slots = Slots(total=4, per_project=2, reclaim=2)
    a, b = Share("a"), Share("b")
    assert slots.reserve(2, a) + slots.reserve(2, b) == 4  # every slot is taken
    delete_a, delete_b = Share("a", reclaims=True), Share("b", reclaims=True)
    assert slots.reserve(3, delete_a) == 1  # one reclaim slot: half of them, per project
    assert slots.reserve(3, delete_b) == 1  # and b's delete still has its own
    assert slots.held() == {"a": 3, "b": 3}
    slots.release(1, delete_a)
    assert slots.reserve(1, delete_a) == 1
    assert slots.free == 0


def test_a_project_deleting_many_clusters_leaves_the_others_their_share() -> None:
    slots = Slots(total=8, per_project=4, reclaim=2)
    assert slots.reserve(10, Share("a", reclaims=True)) == 5  # its share and one reclaim slot
    assert slots.reserve(8, Share("b")) == 4  # b still gets its whole share
    assert slots.reserve(2, Share("b", reclaims=True)) == 1


def test_round_robin_interleaves_projects_in_their_order() -> None:
    items = ["a1", "a2", "a3", "b1", "c1", "b2"]
    assert round_robin(items, lambda item: item[0]) == ["a1", "b1", "c1", "a2", "b2", "a3"]
