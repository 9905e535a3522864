"""The plugins, found by entry point, and the catalog commands validate requests with."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from stevedore import ExtensionManager

from sahara_es.commands.caller import Caller
from sahara_es.commands.errors import Invalid, NotVisible
from sahara_es.commands.images import check_usable
from sahara_es.commands.plugins import (
    DEPRECATED_DEFAULT,
    DESCRIPTIONS,
    PLUGIN_LABELS,
    VERSION_LABELS,
    Labels,
    RecordedLabels,
    recorded,
)
from sahara_es.events.plugins import stream as labels_stream
from sahara_es.infra.base import Flavor, Image
from sahara_es.plugins.base import Plugin, PluginInvalid
from sahara_es.store import Store

NAMESPACE = "sahara_es.plugins"

JOB_TYPES = ("Hive", "Java", "MapReduce", "MapReduce.Streaming", "Pig", "Shell", "Spark",
             "Storm", "Storm.Pyleus", "Dask")
"""Sahara's EDP job types, and sahara-es's ``Dask`` (a Python script run as a client of the
cluster's Dask scheduler)."""


log = logging.getLogger(__name__)

OPT_IN = frozenset({"fake"})
"""Installed plugins an API enables only when its configuration names them: ``fake`` lets any
caller make provisioning steps fail or hang (``cluster_configs``), which only tests want."""


class PluginUnavailable(LookupError):
    """A plugin is installed but cannot run here: what it runs (a package) is missing. It
    then offers no version; the message says what is missing and how to install it."""


def unavailable(plugin: Plugin) -> str | None:
    """Why ``plugin`` cannot run here, or None when it can: a plugin whose programs come
    from a package that may be missing says so with its ``unavailable()``."""
    check = getattr(plugin, "unavailable", None)
    reason = check() if callable(check) else None
    return str(reason) if reason else None


def summary_of(plugin: Plugin, summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` (the plugin's, as the API lists it), saying so when the plugin is
    unavailable: no versions (``versions()`` is empty then), its ``enabled`` label off, the
    reason in its description."""
    reason = unavailable(plugin)
    if reason is None:
        return summary
    labels = {**summary.get("plugin_labels", {}),
              "enabled": {"status": False, "mutable": False}}
    return {**summary, "description": f"{summary['description']} Unavailable: {reason}.",
            "plugin_labels": labels}


def load_plugins(names: list[str] | None = None, *,
                 all_installed: bool = False) -> dict[str, Plugin]:
    """The plugins named (``sahara_es.plugins`` entry points); without ``names``, every
    installed one but the opt-in ones (``OPT_IN``), or all of them with ``all_installed``
    (engines, which must finish and delete clusters of any plugin). A plugin that cannot run
    here (``unavailable``) is kept, offering no version: the API lists it with the reason and
    refuses its templates and clusters with a 400 saying what to install."""
    manager: ExtensionManager[Plugin] = ExtensionManager(NAMESPACE, invoke_on_load=True)
    found: dict[str, Plugin] = {ext.name: ext.obj for ext in manager if ext.obj is not None}
    for name, plugin in sorted(found.items()):
        reason = unavailable(plugin)
        if reason is not None and (names is None or name in names):
            log.warning("plugin %s is unavailable, it offers no version: %s", name, reason)
    if all_installed:
        return found
    if names is None:
        return {name: plugin for name, plugin in found.items() if name not in OPT_IN}
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise LookupError(f"no plugin {', '.join(unknown)}; installed: {', '.join(sorted(found))}")
    return {name: found[name] for name in names}


def _described(carried: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A plugin's (or a version's) own labels, ``deprecated`` among them, each with Sahara's
    description of it."""
    result = {name: dict(value) for name, value in carried.items()}
    result.setdefault("deprecated", dict(DEPRECATED_DEFAULT))
    for name, value in result.items():
        if name in DESCRIPTIONS:
            value.setdefault("description", DESCRIPTIONS[name])
    return result


class PluginCatalog:
    """``commands.catalog.Catalog`` over the plugins and the infrastructure's flavors."""

    def __init__(self, plugins: dict[str, Plugin], flavors: dict[str, Flavor], *,
                 store: Store | None = None) -> None:
        self.plugins = plugins
        self.flavors = flavors
        self.store = store
        """Where what admins change at run time (plugin labels, images) is recorded."""
        self._recorded: dict[str, tuple[int, RecordedLabels]] = {}

    def plugin(self, name: str) -> Plugin:
        try:
            return self.plugins[name]
        except KeyError:
            raise NotVisible(f"plugin {name} not found; available: "
                             f"{', '.join(sorted(self.plugins))}") from None

    def check_plugin(self, plugin: str, version: str) -> None:
        if plugin not in self.plugins:
            raise Invalid(f"plugin {plugin!r} does not exist; available:"
                          f" {', '.join(sorted(self.plugins))}")
        self.check_available(plugin)
        versions = self.plugins[plugin].versions()
        if version not in versions:
            raise Invalid(f"plugin {plugin} has no version {version!r}; versions:"
                          f" {', '.join(versions)}")
        self.check_labels(plugin, version)

    def check_available(self, plugin: str) -> None:
        """``Invalid`` (400) when the plugin cannot run here, saying why."""
        reason = unavailable(self.plugins[plugin])
        if reason is not None:
            raise Invalid(f"plugin {plugin} is unavailable: {reason}")

    # -- labels (``commands.plugins``) ----------------------------------------------------

    def labels(self, plugin: str) -> Labels:
        """The plugin's and its versions' labels: the plugin's own, ``deprecated`` added,
        with the statuses admins recorded. Read from the plugin's stream only when it moved
        since it was last read here (one version look-up), so another API process's change
        shows at once."""
        summary = self.plugins[plugin].summary()
        versions = summary.get("versions") or []
        defaults = {
            PLUGIN_LABELS: _described(summary.get(PLUGIN_LABELS) or {}),
            VERSION_LABELS: {
                v: _described((summary.get(VERSION_LABELS) or {}).get(v) or {})
                for v in versions}}
        return self.recorded_labels(plugin).over(defaults)

    def recorded_labels(self, plugin: str) -> RecordedLabels:
        if self.store is None:
            return RecordedLabels(labels_stream(plugin))
        version = self.store.stream_version(labels_stream(plugin))
        cached = self._recorded.get(plugin)
        if cached is None or cached[0] != version:
            cached = (version, recorded(self.store, plugin))
            self._recorded[plugin] = cached
        return cached[1]

    def summary(self, plugin: str) -> dict[str, Any]:
        """The plugin as ``/v2/plugins`` shows it, with its current labels."""
        return {**self.plugins[plugin].summary(), **self.labels(plugin)}

    def version_details(self, plugin: str, version: str) -> dict[str, Any]:
        return {**self.plugins[plugin].version_details(version), **self.labels(plugin)}

    def check_labels(self, plugin: str, version: str) -> None:
        """``Invalid`` (400) when an admin disabled the plugin or the version; a deprecated
        one is used with a warning in the log, as Sahara did."""
        shown = self.labels(plugin)
        plugin_labels = shown[PLUGIN_LABELS]
        version_labels = shown[VERSION_LABELS].get(version, {})
        if not plugin_labels.get("enabled", {}).get("status", True):
            raise Invalid(f"Plugin {plugin} is not enabled")
        if not version_labels.get("enabled", {}).get("status", True):
            raise Invalid(f"Version {version} of plugin {plugin} is not enabled")
        if plugin_labels.get("deprecated", {}).get("status"):
            log.warning("plugin %s is deprecated and can be removed in the next release",
                        plugin)
        if version_labels.get("deprecated", {}).get("status"):
            log.warning("version %s of plugin %s is deprecated and can be removed in the"
                        " next release", version, plugin)

    def check_node_processes(self, plugin: str, version: str, processes: list[str]) -> None:
        known = {p for group in self.plugins[plugin].node_processes(version).values()
                 for p in group}
        unknown = sorted(set(processes) - known)
        if unknown:
            raise Invalid(f"plugin {plugin} {version} has no node process"
                          f" {', '.join(unknown)}; it has {', '.join(sorted(known))}")
        if len(set(processes)) != len(processes):
            raise Invalid("node_processes must not repeat a process")

    def check_flavor(self, flavor_id: str) -> None:
        if flavor_id not in self.flavors:
            raise Invalid(f"flavor {flavor_id!r} does not exist; flavors:"
                          f" {', '.join(sorted(self.flavors))}")

    def flavor_size(self, flavor_id: str) -> tuple[int, int]:
        self.check_flavor(flavor_id)
        flavor = self.flavors[flavor_id]
        return flavor.vcpus, flavor.ram_mb

    def check_cluster(self, plugin: str, version: str, node_groups: list[dict[str, Any]],
                      configs: dict[str, Any] | None = None) -> None:
        try:
            self.plugins[plugin].validate(version, node_groups, configs)
        except PluginInvalid as error:
            raise Invalid(str(error)) from None

    def check_scaling(self, plugin: str, version: str, node_groups: list[dict[str, Any]],
                      resized: dict[str, int], added: list[dict[str, Any]],
                      configs: dict[str, Any] | None = None) -> None:
        self.check_available(plugin)  # its new nodes could not run
        self.check_labels(plugin, version)
        try:
            self.plugins[plugin].validate_scaling(version, node_groups, resized, added,
                                                  configs)
        except PluginInvalid as error:
            raise Invalid(str(error)) from None

    def check_configs(self, plugin: str, version: str, configs: dict[str, Any] | None,
                      node_groups: list[dict[str, Any]] | None = None) -> None:
        try:
            self.plugins[plugin].validate_configs(version, configs, node_groups)
        except PluginInvalid as error:
            raise Invalid(str(error)) from None

    def check_job_type(self, job_type: str, plugin: str | None = None,
                       version: str | None = None) -> None:
        if job_type not in JOB_TYPES:
            raise Invalid(f"job type {job_type!r} does not exist; types: {', '.join(JOB_TYPES)}")
        if plugin is not None and version is not None:
            supported = self.plugins[plugin].edp_job_types(version)
            if job_type not in supported:
                raise Invalid(f"plugin {plugin} {version} runs {', '.join(supported)} jobs,"
                              f" not {job_type}")

    def job_types(self) -> list[dict[str, Any]]:
        """Sahara's ``job-types`` list: each type with the plugins and versions running it."""
        result = []
        for job_type in JOB_TYPES:
            plugins = []
            for name, plugin in self.plugins.items():
                versions: dict[str, dict[str, Any]] = {
                    v: {} for v in plugin.versions() if job_type in plugin.edp_job_types(v)}
                if versions:
                    plugins.append({**self.summary(name), "versions": versions})
            if plugins:
                result.append({"name": job_type, "plugins": plugins})
        return result

    images: Mapping[str, Image] = MappingProxyType({})
    """The infrastructure's image catalogue, which the images templates and clusters name are
    checked against (given by the composition root, ``api.create_app``)."""

    def check_image(self, image_id: str, plugin: str, version: str, caller: Caller, *,
                    what: str = "image") -> None:
        """``Invalid`` (400) unless the image is offered to the caller, registered, and
        tagged with what the plugin's version requires (Sahara's ``check_image_registered``
        and ``check_required_image_tags``)."""
        if self.store is None:
            raise Invalid(f"{what} {image_id!r}: images cannot be checked without the store")
        required = self.plugins[plugin].required_image_tags(version)
        check_usable(self.store, self.images, image_id, required, caller, what=what)
