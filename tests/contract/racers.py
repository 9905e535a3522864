"""Bodies of the racing processes: each opens its own store from the URL, as an engine would."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from sahara_es.store import (
    ClaimRejected,
    ConcurrencyConflict,
    LeaseHeld,
    LeaseLost,
    open_store,
)
from tests.factories import events


def append_racer(url: str, streams: list[str], count: int, name: str, out: str) -> None:
    store = open_store(url)
    written, conflicts = [], 0
    rng = random.Random(name)
    for _ in range(count):
        stream = rng.choice(streams)
        while True:
            version = store.stream_version(stream)
            batch = events(1)
            try:
                store.append(stream, batch, version)
            except ConcurrencyConflict:
                conflicts += 1
                continue
            written.append(str(batch[0].event_id))
            break
    Path(out).write_text(json.dumps({"written": written, "conflicts": conflicts}))
    store.close()


def lease_racer(url: str, resource: str, name: str, seconds: float, out: str) -> None:
    store = open_store(url)
    held = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            lease = store.acquire_lease(resource, name, ttl=0.3)
        except LeaseHeld:
            time.sleep(0.01)
            continue
        held.append({"epoch": lease.epoch, "owner": name, "at": time.time()})
        time.sleep(0.05)
        if len(held) % 2:
            store.release_lease(lease)  # half given back, half left to expire
        else:
            time.sleep(0.35)
    Path(out).write_text(json.dumps(held))
    store.close()


def claim_racer(url: str, key: str, holders: list[str], out: str) -> None:
    store = open_store(url)
    granted, rejected = [], 0
    for holder in holders:
        try:
            store.claim_with_retry(key, holder, 1, attempts=1000)
            granted.append(holder)
        except ClaimRejected:
            rejected += 1
    Path(out).write_text(json.dumps({"granted": granted, "rejected": rejected}))
    store.close()


def paused_owner(url: str, stream: str, ready: str, go: str, out: str) -> None:
    """Take the lease, write, say ready, wait (the test stops us here), then try to write."""
    store = open_store(url)
    lease = store.acquire_lease(stream, "engine-paused", ttl=1.0)
    store.fence(stream, lease)
    version = store.append(stream, events(1), 0, lease=lease)
    Path(ready).write_text(str(os.getpid()))
    while not Path(go).exists():
        time.sleep(0.01)
    try:
        store.append(stream, events(1), version, lease=lease)
        result = "appended"
    except LeaseLost:
        result = "lease-lost"
    except ConcurrencyConflict:
        result = "conflict"
    Path(out).write_text(result)
    store.close()


def feed_writer(url: str, streams: list[str], count: int, name: str, out: str) -> None:
    store = open_store(url)
    rng = random.Random(name)
    written = []
    for _ in range(count):
        stream = rng.choice(streams)
        while True:
            version = store.stream_version(stream)
            batch = events(rng.randint(1, 3))
            try:
                store.append(stream, batch, version)
            except ConcurrencyConflict:
                continue
            written.extend([stream, version + i + 1] for i in range(len(batch)))
            break
    Path(out).write_text(json.dumps(written))
    store.close()
