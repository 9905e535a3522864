"""Every driver error a plain statement can raise comes out as the store's own."""

from __future__ import annotations

import pytest
from cassandra import ConsistencyLevel, InvalidRequest, OperationTimedOut, ReadTimeout, WriteTimeout
from cassandra import Unavailable as DriverUnavailable
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionShutdown

from sahara_es.store import StoreError, Unavailable
from sahara_es.store.cassandra_errors import plain_errors

TRY_AGAIN = [
    WriteTimeout("timed out", consistency=ConsistencyLevel.QUORUM, required_responses=2,
                 received_responses=1, write_type=0),
    ReadTimeout("timed out", consistency=ConsistencyLevel.QUORUM, required_responses=2,
                received_responses=1, data_retrieved=False),
    DriverUnavailable("not enough replicas"),
    OperationTimedOut("no reply"),
    NoHostAvailable("no host", {}),
    ConnectionShutdown("closed"),
]


@pytest.mark.parametrize("error", TRY_AGAIN, ids=lambda e: type(e).__name__)
def test_a_plain_statement_that_failed_in_the_driver_or_the_node_may_be_tried_again(
        error: Exception) -> None:
    with pytest.raises(Unavailable) as raised, plain_errors("saving a checkpoint"):
        raise error
    assert raised.value.retryable
    assert str(raised.value).startswith(f"saving a checkpoint: {type(error).__name__}")
    assert raised.value.__cause__ is error


def test_a_statement_the_node_refused_as_written_is_a_store_error_not_retried() -> None:
    with pytest.raises(StoreError) as raised, plain_errors():
        raise InvalidRequest("unknown column")
    assert not isinstance(raised.value, Unavailable)
    assert "refused the statement" in str(raised.value)


def test_errors_of_the_store_s_own_pass_through() -> None:
    with pytest.raises(KeyError), plain_errors():
        raise KeyError("not a driver error")
