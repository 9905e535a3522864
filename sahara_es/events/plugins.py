"""What admins change about the installed plugins at run time: their labels (Sahara's
``PATCH /v2/plugins/{name}``). A plugin's stream is ``plugin-<name>``; its fold is the labels
recorded over the plugin's own defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from sahara_es.events.registry import DomainEvent, registry

CATEGORY = "plugin"


def stream(plugin: str) -> str:
    return f"{CATEGORY}-{plugin}"


@registry.event("PluginLabelsChanged")
@dataclass(frozen=True)
class PluginLabelsChanged(DomainEvent):
    """Labels set by an admin: ``plugin_labels`` ``{label: status}`` for the plugin,
    ``version_labels`` ``{version: {label: status}}`` for its versions; labels not named
    keep their status."""

    plugin: str
    plugin_labels: dict[str, bool] = field(default_factory=dict)
    version_labels: dict[str, dict[str, bool]] = field(default_factory=dict)
