"""The infrastructure provider interface: instances a cluster runs on.

A provider creates, finds and deletes instances by *name*: every call is idempotent by name,
so that a workflow resumed by another engine finds what a dead engine half-created
(``get_instance``) instead of creating it twice. ``local`` (sshd nodes on loopback
addresses) is the embedded default; an OpenStack provider (openstacksdk) implements the same
interface.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int = 0


@dataclass(frozen=True)
class Image:
    """An image instances boot from, as the provider's catalogue offers it: the local
    provider's are fixed (``infra/local.py``); the OpenStack provider's will be the Glance
    images the project may see. Whether Sahara may use one (its registration: the user to
    log in as, a description, tags) is recorded in the store, not here."""

    id: str
    name: str
    login_user: str
    """Who sessions on a node booted from it log in as."""
    created_at: str
    """When the image was made (ISO 8601)."""
    min_disk_gb: int = 0
    min_ram_mb: int = 0
    size_bytes: int = 0
    project_id: str | None = None
    """The project that owns it, which alone (with admins) sees it and changes its
    registration; None for the cloud's own images, which every project sees and only admins
    register."""


@dataclass(frozen=True)
class HostInventory:
    """A resource provider (a hypervisor): what it has to give to instances."""

    name: str
    vcpus: int
    ram_mb: int


@dataclass(frozen=True)
class InstanceSpec:
    """What to create. ``host`` is the placement the scheduler claimed for it."""

    name: str
    flavor: str
    public_key: str
    image: str | None = None
    network: str | None = None
    server_group: str | None = None
    host: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    name: str
    address: str
    """Where the engine reaches it (management IP)."""
    ssh_port: int
    username: str
    """Who sessions log in as: never the service's own user (``local``: the cluster's
    unprivileged node user, see ``doc/security.rst``)."""
    host: str | None
    flavor: str
    extra: dict[str, Any] = field(default_factory=dict)


class InfraError(Exception):
    """The provider could not do it; also raised when it would not be safe (a node under a
    privileged user, a service that cannot sandbox nodes)."""

    retryable: bool = False


class InstanceNotFound(InfraError):
    pass


class CapacityExhausted(InfraError):
    """No address, host or other finite resource is left for the instance."""


class InfraProvider(abc.ABC):
    name: str

    @abc.abstractmethod
    def flavors(self) -> dict[str, Flavor]: ...

    @abc.abstractmethod
    def images(self) -> dict[str, Image]:
        """The image catalogue, by id."""

    @abc.abstractmethod
    def hosts(self) -> list[HostInventory]: ...

    @abc.abstractmethod
    def create_instance(self, spec: InstanceSpec) -> Instance:
        """Create the instance, or return the one already created under ``spec.name``."""

    @abc.abstractmethod
    def wait_reachable(self, instance: Instance, timeout: float) -> None:
        """Return once the instance answers on SSH; ``InfraError`` after ``timeout``."""

    @abc.abstractmethod
    def get_instance(self, name: str) -> Instance | None:
        """The instance created under ``name``, if any (a resumed workflow reconciles by it)."""

    @abc.abstractmethod
    def delete_instance(self, name: str) -> None:
        """Delete the instance and everything running on it; a no-op if it is gone."""

    def share_path(self, project_id: str, share_id: str, cluster_id: str) -> str:
        """The folder at which the nodes of cluster ``cluster_id`` reach the project's
        shared file system ``share_id`` (a ``manila://share-id/path`` data source), made on
        first use; ``InfraError`` on an infrastructure that has no shares."""
        raise InfraError(f"the {self.name} infrastructure has no shares")

    def tenant_view(self, text: str) -> str:
        """``text`` (a failure a cluster's owner will read) without what it says of the
        service's own machine: a provider whose nodes live on it replaces its folders."""
        return text
