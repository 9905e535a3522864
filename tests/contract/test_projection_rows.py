"""Projection rows: JSON documents by key, per projection and generation, with a checkpoint
and a live generation; generations never see each other's rows."""

from __future__ import annotations

import uuid

from sahara_es.store import Store
from sahara_es.store.base import prefix_end


def projection() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def test_rows_are_written_read_replaced_and_deleted(store: Store) -> None:
    name = projection()
    store.put_rows(name, 1, {"b": {"n": 2}, "a": {"n": 1, "tags": ["x"]}})
    store.put_rows(name, 1, {"b": {"n": 3}, "c": {"n": 4}})
    store.put_rows(name, 1, {"c": None})

    assert store.get_row(name, 1, "a") == {"n": 1, "tags": ["x"]}
    assert store.get_row(name, 1, "b") == {"n": 3}
    assert store.get_row(name, 1, "c") is None
    assert list(store.scan_rows(name, 1)) == [("a", {"n": 1, "tags": ["x"]}), ("b", {"n": 3})]


def test_a_scan_streams_every_row_in_key_order_across_pages(store: Store) -> None:
    name = projection()
    keys = [f"k{i:05d}" for i in range(1234)]
    store.put_rows(name, 1, {key: {"key": key} for key in reversed(keys)})

    assert [key for key, _ in store.scan_rows(name, 1)] == keys


def test_a_scan_with_a_prefix_streams_only_the_keys_that_start_with_it(store: Store) -> None:
    name = projection()
    mine = [f"project:p/{i:05d}" for i in range(1234)]
    others = ["project:o/1", "project:p", "project:p0", "project:q/1", "public:1", "~built"]
    store.put_rows(name, 1, {key: {"key": key} for key in [*others, *reversed(mine)]})

    assert [key for key, _ in store.scan_rows(name, 1, prefix="project:p/")] == mine
    assert [key for key, _ in store.scan_rows(name, 1, prefix="public:")] == ["public:1"]
    assert [key for key, _ in store.scan_rows(name, 1, prefix="project:p")] == [
        "project:p", *mine, "project:p0"]
    assert list(store.scan_rows(name, 1, prefix="project:z/")) == []


def test_prefix_end_bounds_every_key_that_starts_with_the_prefix() -> None:
    assert prefix_end("project:p/") == "project:p0"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\ud7ff") == "\ue000"
    assert prefix_end("") is None


def test_generations_are_apart_and_a_dropped_one_is_gone(store: Store) -> None:
    name = projection()
    store.put_rows(name, 1, {"a": {"gen": 1}})
    store.put_rows(name, 2, {"a": {"gen": 2}, "b": {"gen": 2}})
    store.save_checkpoint(name, 1, "p1")
    store.save_checkpoint(name, 2, "p2")

    store.drop_rows(name, 1)

    assert list(store.scan_rows(name, 1)) == []
    assert store.checkpoint(name, 1) is None
    assert store.checkpoint(name, 2) == "p2"
    assert [key for key, _ in store.scan_rows(name, 2)] == ["a", "b"]


def test_the_live_generation_and_checkpoints_move_forward(store: Store) -> None:
    name = projection()
    assert store.live_generation(name) is None
    assert store.checkpoint(name, 1) is None

    store.set_live_generation(name, 1)
    store.save_checkpoint(name, 1, "00000000000000000042")
    store.set_live_generation(name, 7)

    assert store.live_generation(name) == 7
    assert store.checkpoint(name, 1) == "00000000000000000042"
