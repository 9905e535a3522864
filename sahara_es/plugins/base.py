"""The provisioning plugin interface, modelled on Sahara's, with one change its redesign asked
for: a plugin *returns tasks* (workflow fragments) instead of doing the work, so that per-node
steps run concurrently and spread across engines.

This module holds what the API needs of a plugin (versions, node processes, configs,
validation); the task-returning half (configure, start, scale, decommission, health) is
declared with the provisioning workflows.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


class PluginInvalid(Exception):
    """The request does not fit the plugin (topology, processes, versions)."""


@dataclass(frozen=True)
class ConfigOption:
    """A plugin setting a user may give (Sahara's config item)."""

    name: str
    applicable_target: str
    """A service name (``Spark``) or ``general``."""
    default_value: Any = None
    config_type: str = "string"
    scope: str = "cluster"
    description: str = ""
    is_optional: bool = True
    priority: int = 2
    config_values: list[Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Topology:
    """Who must be there: process → (minimum, maximum) instances over the cluster."""

    bounds: dict[str, tuple[int, int | None]] = field(default_factory=dict)


class Plugin(abc.ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]

    @abc.abstractmethod
    def versions(self) -> list[str]: ...

    @abc.abstractmethod
    def node_processes(self, version: str) -> dict[str, list[str]]:
        """Service → its node processes (``{"Spark": ["master", "worker"]}``)."""

    def configs(self, version: str) -> list[ConfigOption]:
        return []

    def required_image_tags(self, version: str) -> list[str]:
        return [self.name, version]

    def edp_job_types(self, version: str) -> list[str]:
        return []

    @abc.abstractmethod
    def topology(self, version: str) -> Topology: ...

    def validate(self, version: str, node_groups: list[dict[str, Any]]) -> None:
        """Raise ``PluginInvalid`` unless the cluster's processes fit the topology."""
        counts = process_counts(node_groups)
        for process, (low, high) in self.topology(version).bounds.items():
            have = counts.get(process, 0)
            if have < low:
                raise PluginInvalid(f"{self.name} {version} needs at least {low} {process}"
                                    f" (this cluster would have {have})")
            if high is not None and have > high:
                raise PluginInvalid(f"{self.name} {version} allows at most {high} {process}"
                                    f" (this cluster would have {have})")

    def validate_scaling(self, version: str, node_groups: list[dict[str, Any]],
                         resized: dict[str, int], added: list[dict[str, Any]]) -> None:
        """Raise ``PluginInvalid`` unless the cluster after scaling still fits; by default
        only worker-like processes (those with no maximum) may change in number."""
        after = [{**g, "count": resized.get(g["name"], g["count"])} for g in node_groups]
        fixed = {p for p, (_, high) in self.topology(version).bounds.items()
                 if high is not None}
        for group in [*node_groups, *added]:
            before = group["count"] if group in node_groups else 0
            now = resized.get(group["name"], group["count"])
            touched = fixed & set(group["node_processes"])
            if touched and now != before:
                raise PluginInvalid(f"{self.name}: node group {group['name']!r} runs"
                                    f" {', '.join(sorted(touched))}, which cannot be scaled")
        self.validate(version, [*after, *added])

    def labels(self) -> dict[str, dict[str, Any]]:
        return {"enabled": {"status": True, "mutable": True},
                "hidden": {"status": False, "mutable": True},
                "stable": {"status": True, "mutable": False}}

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "versions": self.versions(), "plugin_labels": self.labels(),
                "version_labels": {v: {"enabled": {"status": True, "mutable": True}}
                                   for v in self.versions()}}

    def version_details(self, version: str) -> dict[str, Any]:
        return {**self.summary(), "node_processes": self.node_processes(version),
                "configs": [c.to_dict() for c in self.configs(version)],
                "required_image_tags": self.required_image_tags(version)}


def process_counts(node_groups: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for group in node_groups:
        for process in group["node_processes"]:
            counts[process] = counts.get(process, 0) + int(group["count"])
    return counts
