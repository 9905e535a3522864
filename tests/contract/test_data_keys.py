"""Data keys: one per owner, agreed on by racing makers, gone for good once deleted; and the
secret box that seals with them (``sahara_es.commands.secrets``), on both stores."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from sahara_es.commands.secrets import SecretBox, SecretUnreadable, is_sealed, key_id_of
from sahara_es.store import DataKey, Store


def owner() -> str:
    return f"cluster-{uuid.uuid4()}"


def material() -> bytes:
    return os.urandom(32)


def test_a_data_key_is_kept_and_read_back(store: Store) -> None:
    who, key = owner(), material()

    made = store.create_data_key(who, "k1", key)

    assert made == DataKey(who, "k1", key)
    assert store.get_data_key(who) == made
    assert store.get_data_key(owner()) is None


def test_a_second_key_for_the_same_owner_gets_the_first_back(store: Store) -> None:
    who, first = owner(), material()
    store.create_data_key(who, "first", first)

    again = store.create_data_key(who, "second", material())

    assert again == DataKey(who, "first", first)
    assert store.get_data_key(who) == again


def test_makers_racing_agree_on_one_key(store: Store) -> None:
    who = owner()
    start = threading.Barrier(6)
    got: list[DataKey] = []

    def make(n: int) -> None:
        start.wait()
        got.append(store.create_data_key(who, f"k{n}", material()))

    racers = [threading.Thread(target=make, args=(n,)) for n in range(6)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()

    assert len(got) == 6 and len(set(got)) == 1
    assert store.get_data_key(who) == got[0]


def test_a_deleted_key_is_gone_and_deleting_again_is_a_no_op(store: Store) -> None:
    who, other = owner(), owner()
    store.create_data_key(who, "k", material())
    store.create_data_key(other, "k", material())

    store.delete_data_key(who)
    store.delete_data_key(who)
    store.delete_data_key(owner())  # never had one

    assert store.get_data_key(who) is None
    assert store.get_data_key(other) is not None


def test_a_key_made_after_a_delete_is_another_key(store: Store) -> None:
    who = owner()
    store.create_data_key(who, "before", material())
    store.delete_data_key(who)

    after = store.create_data_key(who, "after", material())

    assert after.key_id == "after"
    assert store.get_data_key(who) == after


def test_the_key_material_is_never_in_its_repr(store: Store) -> None:
    key = store.create_data_key(owner(), "k", material())

    assert key.material.hex() not in repr(key) and str(key.material) not in repr(key)


# -- the secret box on each store ------------------------------------------------------------

SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n"


def test_a_sealed_secret_opens_with_its_owner_and_purpose_only(store: Store) -> None:
    box, who = SecretBox(store), owner()

    sealed = box.seal(who, SECRET, purpose="ssh")

    assert is_sealed(sealed) and SECRET not in sealed and "b3BlbnNzaC1" not in sealed
    assert key_id_of(sealed) == store.get_data_key(who).key_id  # type: ignore[union-attr]
    assert box.open(who, sealed, purpose="ssh") == SECRET
    assert box.seal(who, SECRET, purpose="ssh") != sealed  # a fresh nonce every time
    with pytest.raises(SecretUnreadable):
        box.open(who, sealed, purpose="another use")
    other = owner()
    box.seal(other, "x", purpose="ssh")
    with pytest.raises(SecretUnreadable):
        box.open(other, sealed, purpose="ssh")  # copied into another resource's events


def test_a_shredded_secret_never_opens_again(store: Store) -> None:
    box, who = SecretBox(store), owner()
    sealed = box.seal(who, SECRET, purpose="ssh")
    json_sealed = box.seal_json(who, {"user": "u", "password": "hunter2"}, purpose="creds")
    assert box.open_json(who, json_sealed, purpose="creds") == {"user": "u",
                                                                "password": "hunter2"}

    box.shred(who)

    with pytest.raises(SecretUnreadable) as unreadable:
        box.open(who, sealed, purpose="ssh")
    assert SECRET not in str(unreadable.value) and who in str(unreadable.value)
    with pytest.raises(SecretUnreadable):
        box.open_json(who, json_sealed, purpose="creds")
    box.seal(who, "new", purpose="ssh")  # a new key for the owner opens nothing older
    with pytest.raises(SecretUnreadable):
        box.open(who, sealed, purpose="ssh")


@pytest.mark.parametrize("damaged", ["", "plain text", "sbx1::", "sbx1:k:not base64!",
                                     "sbx0:k:AAAA"])
def test_what_is_not_a_sealed_secret_does_not_open(store: Store, damaged: str) -> None:
    box, who = SecretBox(store), owner()
    box.seal(who, SECRET, purpose="ssh")

    with pytest.raises(SecretUnreadable):
        box.open(who, damaged, purpose="ssh")
