"""The event store: events, leases, claims, unique names, snapshots and data keys, on SQLite or
Cassandra.

Backends are imported lazily by ``open_store`` so that nothing here loads the Cassandra driver
for a process that runs on SQLite.
"""

from sahara_es.store.base import (
    Claim,
    ClaimStore,
    DataKey,
    DataKeyStore,
    EventStore,
    Lease,
    LeaseState,
    LeaseStore,
    NameStore,
    RowStore,
    Snapshot,
    SnapshotStore,
    Store,
    claim_region,
    region_claim_key,
)
from sahara_es.store.config import DEFAULT_STORE_URL, CassandraConfig, parse_store_url
from sahara_es.store.errors import (
    ClaimRejected,
    ConcurrencyConflict,
    ForeignRegion,
    LeaseHeld,
    LeaseLost,
    NameTaken,
    NotFound,
    OutcomeUnknown,
    StoreError,
    Unavailable,
)
from sahara_es.store.factory import UnknownBackend, open_store

__all__ = [
    "DEFAULT_STORE_URL",
    "CassandraConfig",
    "Claim",
    "ClaimRejected",
    "ClaimStore",
    "ConcurrencyConflict",
    "DataKey",
    "DataKeyStore",
    "EventStore",
    "ForeignRegion",
    "Lease",
    "LeaseHeld",
    "LeaseLost",
    "LeaseState",
    "LeaseStore",
    "NameStore",
    "NameTaken",
    "NotFound",
    "OutcomeUnknown",
    "RowStore",
    "Snapshot",
    "SnapshotStore",
    "Store",
    "StoreError",
    "Unavailable",
    "UnknownBackend",
    "claim_region",
    "open_store",
    "parse_store_url",
    "region_claim_key",
]
