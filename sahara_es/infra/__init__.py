"""Infrastructure: the instances a cluster runs on, and the SSH sessions that provision them.

Providers are found by name through the ``sahara_es.infra`` entry points (``open_provider``),
so that another provider plugs in without changing this package.
"""

from __future__ import annotations

from typing import Any

from stevedore import driver
from stevedore.exception import NoMatches

from sahara_es.infra.base import (
    CapacityExhausted,
    Flavor,
    HostInventory,
    InfraError,
    InfraProvider,
    Instance,
    InstanceNotFound,
    InstanceSpec,
)
from sahara_es.infra.local import InstanceUnreachable, LocalProvider
from sahara_es.infra.ssh import (
    CommandResult,
    CommandsFailed,
    ConnectFailed,
    HostKeyMismatch,
    Node,
    RemoteCommandFailed,
    RemoteCommandTimeout,
    SSHError,
    SSHPool,
    generate_keypair,
    redact,
)

PROVIDERS = "sahara_es.infra"
"""The entry point group providers register under."""


class UnknownProvider(InfraError, LookupError):
    """No provider of that name is installed (a configuration error, never retryable)."""


def open_provider(name: str, **config: Any) -> InfraProvider:
    """The provider registered as ``name``, built with ``config`` (``store``, ``root``...)."""
    try:
        manager: driver.DriverManager[InfraProvider] = driver.DriverManager(
            PROVIDERS, name, invoke_on_load=True, invoke_kwds=config
        )
    except NoMatches:
        raise UnknownProvider(f"no infrastructure provider {name!r} is installed") from None
    provider = manager.driver
    if not isinstance(provider, InfraProvider):
        raise UnknownProvider(f"infrastructure provider {name!r} does not implement"
                              " InfraProvider")
    return provider


__all__ = [
    "PROVIDERS",
    "CapacityExhausted",
    "CommandResult",
    "CommandsFailed",
    "ConnectFailed",
    "Flavor",
    "HostInventory",
    "HostKeyMismatch",
    "InfraError",
    "InfraProvider",
    "Instance",
    "InstanceNotFound",
    "InstanceSpec",
    "InstanceUnreachable",
    "LocalProvider",
    "Node",
    "RemoteCommandFailed",
    "RemoteCommandTimeout",
    "SSHError",
    "SSHPool",
    "UnknownProvider",
    "generate_keypair",
    "open_provider",
    "redact",
]
