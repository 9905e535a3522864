"""A cluster's management key: sealed in its event, agreed on by racing engines, unreadable
for good once the cluster's secrets are shredded; old (version 1) events still read; on both
stores."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from sahara_es.commands.secrets import SecretUnreadable, is_sealed
from sahara_es.events import NewEvent, registry
from sahara_es.events import resources as ev
from sahara_es.infra.ssh import generate_keypair
from sahara_es.provisioning.services import KEY_CATEGORY, ensure_cluster_key, shred_cluster_secrets
from sahara_es.store import Store

_SHARED_LINES = set(generate_keypair()[0].splitlines()) & set(generate_keypair()[0].splitlines())
"""Lines every OpenSSH Ed25519 PEM has (the armour, the encoded format header): no secret."""


def secret_parts(pem: str) -> list[str]:
    """The PEM and each of its lines of key material: none may show anywhere."""
    return [pem, *(line for line in pem.splitlines()
                   if len(line) >= 16 and line not in _SHARED_LINES)]


def shows_secret(text: str, pem: str) -> bool:
    return any(part in text for part in secret_parts(pem))


def test_the_private_key_is_sealed_in_its_event_and_opens_for_the_engine(store: Store) -> None:
    cluster_id = str(uuid.uuid4())

    private, public = ensure_cluster_key(store, cluster_id)

    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert ensure_cluster_key(store, cluster_id) == (private, public)
    [event] = list(store.read(f"{KEY_CATEGORY}-{cluster_id}"))
    assert event.schema_version == ev.ClusterKeyGenerated.schema_version == 2
    assert set(event.data) == {"sealed_private_key", "public_key", "key_owner"}
    assert is_sealed(event.data["sealed_private_key"])
    assert event.data["key_owner"] == f"cluster-{cluster_id}"
    assert not shows_secret(json.dumps(event.data), private)
    fact = registry.decode(event)
    assert not shows_secret(repr(fact), private)


def test_engines_racing_for_the_key_agree_on_one(store: Store) -> None:
    cluster_id = str(uuid.uuid4())
    start = threading.Barrier(4)
    got: list[tuple[str, str]] = []

    def make() -> None:
        start.wait()
        got.append(ensure_cluster_key(store, cluster_id))

    racers = [threading.Thread(target=make) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()

    assert len(got) == 4 and len(set(got)) == 1
    assert store.stream_version(f"{KEY_CATEGORY}-{cluster_id}") == 1


def test_a_shredded_cluster_key_is_unreadable_and_never_made_again(store: Store) -> None:
    cluster_id = str(uuid.uuid4())
    private, _ = ensure_cluster_key(store, cluster_id)

    shred_cluster_secrets(store, cluster_id)
    shred_cluster_secrets(store, cluster_id)  # a retried delete

    assert store.get_data_key(f"cluster-{cluster_id}") is None
    with pytest.raises(SecretUnreadable) as unreadable:
        ensure_cluster_key(store, cluster_id)
    assert not shows_secret(str(unreadable.value), private)
    assert store.stream_version(f"{KEY_CATEGORY}-{cluster_id}") == 1


def test_a_version_1_event_still_decodes_with_its_key_in_clear(store: Store) -> None:
    cluster_id = str(uuid.uuid4())
    private, public = generate_keypair("old")
    store.append(f"{KEY_CATEGORY}-{cluster_id}", [NewEvent(
        type="ClusterKeyGenerated", schema_version=1,
        data={"private_key": private, "public_key": public})], 0)

    [event] = list(store.read(f"{KEY_CATEGORY}-{cluster_id}"))
    fact = registry.decode(event)

    assert isinstance(fact, ev.ClusterKeyGenerated)
    assert (fact.key_owner, fact.sealed_private_key) == ("", "")
    assert fact.legacy_private_key == private and private not in repr(fact)
    assert ensure_cluster_key(store, cluster_id) == (private, public)


def test_new_events_never_carry_a_key_in_clear() -> None:
    record = registry.new_event(ev.ClusterKeyGenerated("sbx1:k:AAAA", "ssh-ed25519 A", "o"))

    assert record.schema_version == 2
    assert record.data == {"sealed_private_key": "sbx1:k:AAAA", "public_key": "ssh-ed25519 A",
                           "key_owner": "o"}
