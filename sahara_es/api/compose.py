"""The v2 API composed once: what every process serving it (``sahara-es api``, ``sahara-es
all-in-one``, the WSGI module) and every test and benchmark gives ``create_app``.

``create_app`` stays the Flask factory: plugins, auth, the projector and the views, on the
store and quota it is given. ``app_for`` decides those: the store given, or the one at
``config.store_url`` (its schema applied); the quota the store's own quota claims enforce
(``STORE_QUOTAS``), one given (the gate an engine's services share), or none.
"""

from __future__ import annotations

from typing import Final, Literal

from flask import Flask

from sahara_es.api import app as factory
from sahara_es.api.app import ApiConfig
from sahara_es.commands.catalog import Quota
from sahara_es.infra.quotas import Quotas
from sahara_es.provisioning.services import QuotaGate
from sahara_es.store import Store, open_store

STORE_QUOTAS: Final = "store"
"""Cluster creates and scales claim the store's per-project quota claims
(``infra.quotas.Quotas`` behind a ``QuotaGate``), as the service does."""


def app_for(config: ApiConfig, *, store: Store | None = None,
            quota: Quota | Literal["store"] | None = None) -> Flask:
    """The API for ``config``, on ``store`` (default: open ``config.store_url`` and apply its
    schema). ``quota``: ``STORE_QUOTAS``, a ``commands.catalog.Quota``, or None for no quota
    (tests and development, as ``create_app``)."""
    store = store or open_store(config.store_url, upgrade=True)
    if isinstance(quota, str):  # STORE_QUOTAS, the only string it may be
        quota = QuotaGate(Quotas(store))
    # through the module, so that one stand-in for the factory stands in for every caller
    return factory.create_app(config, store=store, quota=quota)
