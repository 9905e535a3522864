"""The one translation of Cassandra driver errors into the store's own (``store/errors.py``).

Plain statements (reads, and writes that are idempotent: sending one twice is harmless)
translate here: anything the driver or the node raises while running one is ``Unavailable``
(try again), except a statement the node refused as written (``StoreError``). A server-side
``WriteTimeout`` of a plain write is ``Unavailable`` too: the write may or may not have landed,
and writing it again lands the same thing.

Conditional statements (LWTs) are the exception, in ``CassandraStore._lwt``: once sent, any
failure is an unknown outcome, found out by a SERIAL read, never retried blindly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cassandra import DriverException, OperationTimedOut, RequestValidationException
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException

from sahara_es.store.errors import StoreError, Unavailable

DRIVER_FAILURES: tuple[type[Exception], ...] = (
    DriverException, OperationTimedOut, NoHostAvailable, ConnectionException)
"""What running a statement can raise, from the driver or from the node."""


def translated(error: BaseException, doing: str = "") -> StoreError:
    """The store's error for a driver ``error`` raised by a plain statement."""
    prefix = f"{doing}: " if doing else ""
    if isinstance(error, RequestValidationException):
        return StoreError(f"{prefix}Cassandra refused the statement: {error}")
    return Unavailable(f"{prefix}{type(error).__name__}: {error}")


@contextmanager
def plain_errors(doing: str = "") -> Iterator[None]:
    """Driver errors of the plain statements run inside, as the store's own."""
    try:
        yield
    except DRIVER_FAILURES as error:
        raise translated(error, doing) from error
