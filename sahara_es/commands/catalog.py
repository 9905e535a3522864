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

    def check_cluster(self, plugin: str, version: str,
                      node_groups: list[dict[str, Any]]) -> None:
        """The topology as a whole (e.g. exactly one master, at least one worker)."""

    def check_scaling(self, plugin: str, version: str, node_groups: list[dict[str, Any]],
                      resized: dict[str, int], added: list[dict[str, Any]]) -> None: ...

    def check_job_type(self, job_type: str, plugin: str | None = None,
                       version: str | None = None) -> None: ...
