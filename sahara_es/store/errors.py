"""The store's error hierarchy, the one place backend errors are translated into.

::

    StoreError                    (retryable: False)
    ├── ConcurrencyConflict       the stream moved on, or a claim's generation changed (retryable)
    ├── LeaseLost                 the lease was taken over; a fenced write was refused
    ├── LeaseHeld                 someone else holds an unexpired lease
    ├── ClaimRejected             the claim would exceed the capacity
    ├── NameTaken                 a unique name is reserved by another owner
    ├── NotFound                  no such lease, claim or name
    ├── ForeignRegion             a region-local claim changed from another region
    └── Unavailable               the backend could not be reached in time (retryable)
        └── OutcomeUnknown        an append was sent, and whether it applied could not be
                                  found out before the backend stopped answering (retryable:
                                  an append retried with the same events is recognised)

``retryable`` says whether trying the same operation again, after re-reading, may succeed.
"""

from __future__ import annotations


class StoreError(Exception):
    retryable: bool = False


class ConcurrencyConflict(StoreError):
    retryable = True

    def __init__(self, message: str, *, actual_version: int | None = None) -> None:
        super().__init__(message)
        self.actual_version = actual_version


class LeaseLost(StoreError):
    """A fenced write carried a lease whose epoch is no longer current."""


class LeaseHeld(StoreError):
    def __init__(self, message: str, *, owner: str, expires_at: float) -> None:
        super().__init__(message)
        self.owner = owner
        self.expires_at = expires_at


class ClaimRejected(StoreError):
    """Granting the claim would overcommit the resource."""


class NameTaken(StoreError):
    def __init__(self, message: str, *, owner_id: str) -> None:
        super().__init__(message)
        self.owner_id = owner_id


class NotFound(StoreError):
    pass


class ForeignRegion(StoreError):
    """A region-local claim (``region_claim_key``) may be changed from its own region only:
    two regions writing one key at LOCAL_SERIAL would both win."""


class Unavailable(StoreError):
    retryable = True


class OutcomeUnknown(Unavailable):
    """An append went out and the backend stopped answering before the store could find out
    whether it applied. Retrying the same append (the same event ids, the same expected
    version) is safe: a store that finds its own events at those versions reports success."""
