"""Data keys on Cassandra when an LWT's reply is lost: settled by a SERIAL re-read, never
guessed (a key reported made is the one kept; a delete reported done is done)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from sahara_es.store import DataKey, Unavailable, parse_store_url
from tests.conftest import require_backend
from tests.factories import CASSANDRA_TEST_URL
from tests.integration.test_cassandra_outcomes import RepliesLost, replies_lost


@pytest.fixture(scope="module")
def flaky() -> Iterator[RepliesLost]:
    require_backend("cassandra")
    store = RepliesLost(parse_store_url(CASSANDRA_TEST_URL + "&request_timeout=2")[1]["config"])
    store.upgrade()
    yield store
    store.close()


def owner() -> str:
    return f"cluster-{uuid.uuid4()}"


def test_a_key_made_before_its_reply_was_lost_is_reported_made(flaky: RepliesLost) -> None:
    who, material = owner(), os.urandom(32)

    with replies_lost(flaky, applied=True):
        made = flaky.create_data_key(who, "k", material)

    assert made == DataKey(who, "k", material) == flaky.get_data_key(who)


def test_a_key_never_made_is_retried_then_reported_unavailable(flaky: RepliesLost) -> None:
    who = owner()

    with replies_lost(flaky, applied=False), pytest.raises(Unavailable):
        flaky.create_data_key(who, "k", os.urandom(32))

    assert flaky.get_data_key(who) is None


def test_a_delete_is_done_only_when_the_key_is_gone(flaky: RepliesLost) -> None:
    done, not_done = owner(), owner()
    for who in (done, not_done):
        flaky.create_data_key(who, "k", os.urandom(32))

    with replies_lost(flaky, applied=True):
        flaky.delete_data_key(done)
    with replies_lost(flaky, applied=False), pytest.raises(Unavailable):
        flaky.delete_data_key(not_done)

    assert flaky.get_data_key(done) is None
    assert flaky.get_data_key(not_done) is not None
