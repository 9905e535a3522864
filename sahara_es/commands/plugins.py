"""Changing a plugin's labels, as Sahara's ``PATCH /v2/plugins/{name}`` did: an admin enables
or disables a plugin or one of its versions (a disabled one refuses new templates, clusters,
scaling and jobs), hides it from listings' users, or deprecates it (it still works, and says
so). Each change is a ``PluginLabelsChanged`` event on the plugin's stream.

Which labels a plugin and its versions carry, and which of them may change, is what the
plugin catalog shows (``plugins.catalog.PluginCatalog.labels``); a change naming a label it
does not carry, or one that is not mutable (``stable``), is refused, as Sahara refused it.
"""

from __future__ import annotations

import copy
from typing import Any

from sahara_es.commands import repository
from sahara_es.commands.caller import Caller
from sahara_es.commands.errors import ChangedConcurrently, Forbidden, Invalid
from sahara_es.events import Aggregate, RecordedEvent, registry
from sahara_es.events import plugins as ev
from sahara_es.store import ConcurrencyConflict, Store

PLUGIN_LABELS = "plugin_labels"
VERSION_LABELS = "version_labels"

DESCRIPTIONS = {
    "enabled": "Plugin or its version is enabled and can be used by user.",
    "hidden": "Existence of plugin or its version is hidden, but still can be used for"
              " cluster creation by CLI and directly by client.",
    "stable": "Indicates that plugin or its version are stable to be used",
    "deprecated": "Plugin or its version is deprecated and will be removed in future"
                  " releases. Please, consider to use another plugin or its version.",
}
"""Sahara's words for each label, shown beside its status."""

DEPRECATED_DEFAULT = {"status": False, "mutable": True}
"""Every plugin and version carries ``deprecated``, off until an admin sets it (in Sahara,
only a plugin's code could deprecate it)."""

Labels = dict[str, Any]
"""``{"plugin_labels": {label: {"status", "mutable", ...}}, "version_labels": {version:
{label: {...}}}}``, as the API shows them."""


class RecordedLabels(Aggregate):
    """The statuses admins set on a plugin and its versions, in the order they set them."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id)
        self.plugin_labels: dict[str, bool] = {}
        self.version_labels: dict[str, dict[str, bool]] = {}

    def apply(self, event: RecordedEvent) -> None:
        fact = registry.decode(event)
        if isinstance(fact, ev.PluginLabelsChanged):
            self.plugin_labels.update(fact.plugin_labels)
            for version, labels in fact.version_labels.items():
                self.version_labels.setdefault(version, {}).update(labels)

    def to_snapshot(self) -> dict[str, Any]:
        return {PLUGIN_LABELS: self.plugin_labels, VERSION_LABELS: self.version_labels}

    def from_snapshot(self, state: dict[str, Any]) -> None:
        self.plugin_labels = dict(state[PLUGIN_LABELS])
        self.version_labels = {v: dict(labels) for v, labels in state[VERSION_LABELS].items()}

    def over(self, defaults: Labels) -> Labels:
        """``defaults`` (a plugin's own labels) with the recorded statuses of its mutable
        labels; a label the plugin made immutable (an unavailable plugin's ``enabled``) keeps
        the plugin's status."""
        shown = copy.deepcopy(defaults)
        _set(shown.get(PLUGIN_LABELS, {}), self.plugin_labels)
        for version, labels in shown.get(VERSION_LABELS, {}).items():
            _set(labels, self.version_labels.get(version, {}))
        return shown


def _set(labels: dict[str, dict[str, Any]], statuses: dict[str, bool]) -> None:
    for name, status in statuses.items():
        if name in labels and labels[name].get("mutable"):
            labels[name]["status"] = status


def recorded(store: Store, plugin: str) -> RecordedLabels:
    return repository.load(store, RecordedLabels, ev.stream(plugin))


def require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise Forbidden("only an admin changes plugin labels")


def check_changes(plugin: str, shown: Labels, changes: dict[str, Any]) -> None:
    """``Invalid`` unless each label ``changes`` names is one the plugin (or the version)
    carries and may change; Sahara's ``validate_plugin_update``."""
    _check_labels(shown[PLUGIN_LABELS], changes.get(PLUGIN_LABELS) or {},
                  f"plugin {plugin}")
    for version, labels in (changes.get(VERSION_LABELS) or {}).items():
        if version not in shown[VERSION_LABELS]:
            raise Invalid(f"Unknown plugin version {version!r} of {plugin}; versions:"
                          f" {', '.join(sorted(shown[VERSION_LABELS]))}")
        _check_labels(shown[VERSION_LABELS][version], labels,
                      f"version {version} of plugin {plugin}")


def _check_labels(carried: dict[str, dict[str, Any]], changes: dict[str, Any],
                  subject: str) -> None:
    for label in changes:
        if label not in carried:
            raise Invalid(f"Label {label[:60]!r} can't be updated because it's not available"
                          f" for {subject}; its labels: {', '.join(sorted(carried))}")
        if not carried[label].get("mutable"):
            raise Invalid(f"Label {label!r} can't be updated because it's not mutable")


def change_labels(store: Store, caller: Caller, plugin: str, shown: Labels,
                  changes: dict[str, Any]) -> RecordedLabels:
    """Record the label statuses ``changes`` sets (``{"plugin_labels": {label: {"status":
    bool}}, "version_labels": {version: {label: {"status": bool}}}}``) on the plugin whose
    labels are ``shown``; the labels as recorded after. Only an admin may."""
    require_admin(caller)
    check_changes(plugin, shown, changes)
    fact = ev.PluginLabelsChanged(
        plugin,
        {label: bool(value["status"])
         for label, value in (changes.get(PLUGIN_LABELS) or {}).items()},
        {version: {label: bool(value["status"]) for label, value in labels.items()}
         for version, labels in (changes.get(VERSION_LABELS) or {}).items() if labels})
    aggregate = recorded(store, plugin)
    if not fact.plugin_labels and not fact.version_labels:
        return aggregate
    for _ in range(CONFLICT_RETRIES):
        try:
            repository.save(store, aggregate, [registry.new_event(fact, caller.metadata())])
            return aggregate
        except ConcurrencyConflict:  # another admin's change: each sets only its labels
            aggregate = recorded(store, plugin)
    raise ChangedConcurrently(f"the labels of plugin {plugin} keep being changed by other"
                              " requests; retry")


CONFLICT_RETRIES = 10
"""Appends tried when other admins' changes land first; each change names the labels it
sets, so it holds after theirs (the last one wins, as in Sahara). A change loses at most once
to each other change in flight, so up to ten admins at once all get through."""
