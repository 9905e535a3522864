"""The one lookup of a store backend: by URL scheme, through the ``sahara_es.stores`` entry
points, so another backend plugs in without changing this package."""

from __future__ import annotations

from stevedore import driver
from stevedore.exception import NoMatches

from sahara_es.store.base import Store
from sahara_es.store.config import DEFAULT_STORE_URL, parse_store_url


class UnknownBackend(LookupError):
    pass


def open_store(url: str = DEFAULT_STORE_URL, *, upgrade: bool = False) -> Store:
    """Open the store named by ``url``; with ``upgrade``, apply pending schema migrations."""
    name, kwargs = parse_store_url(url)
    try:
        manager: driver.DriverManager[Store] = driver.DriverManager(
            "sahara_es.stores", name, invoke_on_load=True, invoke_kwds=kwargs
        )
    except NoMatches:
        raise UnknownBackend(f"no store backend {name!r} is installed") from None
    store = manager.driver
    if not isinstance(store, Store):
        raise UnknownBackend(f"store backend {name!r} does not implement Store")
    if upgrade:
        store.upgrade()
    return store
