"""What commands need to know about plugins and infrastructure to validate a request.

Plugins and providers sit above commands in the layers, so commands see them only through
this protocol; the composition root (``api.create_app``) passes the real catalog in.
Each method raises ``commands.errors.Invalid`` with a message a user can act on.
"""

from __future__ import annotations

from typing import Any, Protocol


class Catalog(Protocol):
    def check_plugin(self, plugin: str, version: str) -> None:
        """The plugin exists, is enabled, and has the version."""

    def check_node_processes(self, plugin: str, version: str, processes: list[str]) -> None: ...

    def check_flavor(self, flavor_id: str) -> None: ...

    def flavor_size(self, flavor_id: str) -> tuple[int, int]:
        """(vCPUs, RAM in MB) of a flavor."""

    def check_cluster(self, plugin: str, version: str, node_groups: list[dict[str, Any]],
                      configs: dict[str, Any] | None = None) -> None:
        """The topology as a whole (e.g. exactly one master, at least one worker), and the
        cluster's and node groups' configs (``check_configs``)."""

    def check_scaling(self, plugin: str, version: str, node_groups: list[dict[str, Any]],
                      resized: dict[str, int], added: list[dict[str, Any]],
                      configs: dict[str, Any] | None = None) -> None: ...

    def check_configs(self, plugin: str, version: str, configs: dict[str, Any] | None,
                      node_groups: list[dict[str, Any]] | None = None) -> None:
        """``cluster_configs`` and each node group's ``node_configs`` are values the plugin
        may hand to the programs it starts."""

    def check_job_type(self, job_type: str, plugin: str | None = None,
                       version: str | None = None) -> None: ...


class Quota(Protocol):
    """Per-project quotas, claimed before anything is provisioned.

    ``claim`` raises ``commands.errors.QuotaExceeded`` and claims nothing when any of the
    three would be exceeded; a retried claim by the same holder is not counted twice.
    """

    def claim(self, project: str, holder: str, *, instances: int, cores: int,
              ram_mb: int) -> None: ...

    def release(self, project: str, holder: str) -> None: ...


class NoQuota:
    def claim(self, project: str, holder: str, *, instances: int, cores: int,
              ram_mb: int) -> None:
        pass

    def release(self, project: str, holder: str) -> None:
        pass


def needs(catalog: Catalog, node_groups: list[dict[str, Any]]) -> dict[str, int]:
    """What node groups take from a quota: instances, cores, RAM."""
    total = {"instances": 0, "cores": 0, "ram_mb": 0}
    for group in node_groups:
        vcpus, ram = catalog.flavor_size(group["flavor_id"])
        count = int(group["count"])
        total["instances"] += count
        total["cores"] += count * vcpus
        total["ram_mb"] += count * ram
    return total
