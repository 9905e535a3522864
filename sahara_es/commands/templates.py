"""Node group templates and cluster templates: validated against the plugin catalog; a
cluster template pins the node group templates its node groups are made from."""

from __future__ import annotations

import re
from typing import Any

from sahara_es.commands import resources
from sahara_es.commands.caller import Caller
from sahara_es.commands.catalog import Catalog
from sahara_es.commands.errors import Invalid
from sahara_es.commands.images import check_image
from sahara_es.events.resources import Doc, Kind
from sahara_es.store import Store

NGT = Kind.NODE_GROUP_TEMPLATE
CT = Kind.CLUSTER_TEMPLATE

NODE_GROUP_TEMPLATE_FIELDS = (
    "flavor_id", "node_processes", "image_id", "node_configs", "volumes_per_node",
    "volumes_size", "volume_type", "volumes_availability_zone", "volume_mount_prefix",
    "volume_local_to_instance", "floating_ip_pool", "security_groups", "auto_security_group",
    "availability_zone", "is_proxy_gateway", "use_autoconfig", "shares",
    "boot_from_volume", "boot_volume_type", "boot_volume_availability_zone",
    "boot_volume_local_to_instance",
)
"""What a node group takes from its template unless the request sets it."""


NODE_GROUP_NAME = re.compile(r"^[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?$")
NODE_GROUP_NAME_MAX = 40
"""Node group names become host and instance names (``c<cluster>-<group>-<n>``, lowercased,
at most 63 characters): letters, digits and hyphens, starting with a letter and not ending
with a hyphen, and unique in a cluster regardless of case."""


def check_node_group_names(names: list[str]) -> None:
    """``Invalid`` naming the first group whose name can never provision."""
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if not 1 <= len(name) <= NODE_GROUP_NAME_MAX:
            raise Invalid(f"node group {name[:60]!r}: names are 1-{NODE_GROUP_NAME_MAX}"
                          " characters")
        if not NODE_GROUP_NAME.match(name):
            raise Invalid(f"node group {name!r}: names are letters, digits and hyphens,"
                          " starting with a letter and not ending with a hyphen")
        first = seen.setdefault(name.lower(), index)
        if first != index:
            raise Invalid(f"node group {name!r}: another group is named {names[first]!r};"
                          " node group names must be unique regardless of case")


def check_node_group_template(catalog: Catalog, fields: Doc, caller: Caller, *,
                              image: bool = True) -> None:
    """The template's plugin, processes, flavor and configs; and its image, if ``image``."""
    plugin, version = fields["plugin_name"], fields["plugin_version"]
    catalog.check_plugin(plugin, version)
    catalog.check_node_processes(plugin, version, fields["node_processes"])
    catalog.check_flavor(fields["flavor_id"])
    catalog.check_configs(plugin, version, None, [fields])
    if image:
        check_image(catalog, fields.get("image_id"), plugin, version, caller, what="image_id")


IMAGE_BOUND = ("plugin_name", "plugin_version")
"""Changing these re-checks a template's image: its required tags are the plugin version's."""


def create_node_group_template(store: Store, caller: Caller, catalog: Catalog,
                               fields: Doc) -> Doc:
    check_node_group_template(catalog, fields, caller)
    return resources.create(store, NGT, caller, fields)


def update_node_group_template(store: Store, caller: Caller, catalog: Catalog,
                               template_id: str, changes: Doc) -> Doc:
    current = resources.owned(store, NGT, template_id, caller).doc
    assert current is not None
    check_node_group_template(catalog, {**current, **changes}, caller,
                              image=bool({"image_id", *IMAGE_BOUND} & set(changes)))
    return resources.update(store, NGT, template_id, caller, changes)


def expand_node_groups(store: Store, caller: Caller, catalog: Catalog, plugin: str,
                       version: str, groups: list[Doc]) -> tuple[list[Doc], list[tuple[Kind, str]]]:
    """Each node group completed from its node group template (the request's own fields win),
    checked against the plugin; and the templates it uses."""
    expanded: list[Doc] = []
    uses: list[tuple[Kind, str]] = []
    check_node_group_names([group["name"] for group in groups])
    for group in groups:
        full: dict[str, Any] = {}
        template_id = group.get("node_group_template_id")
        if template_id:
            template = resources.referenced(store, NGT, template_id, caller).doc
            assert template is not None
            if (template["plugin_name"], template["plugin_version"]) != (plugin, version):
                raise Invalid(
                    f"node group {group['name']!r}: template {template_id} is for"
                    f" {template['plugin_name']} {template['plugin_version']}, not"
                    f" {plugin} {version}")
            full.update({k: template[k] for k in NODE_GROUP_TEMPLATE_FIELDS if k in template})
            uses.append((NGT, template_id))
        full.update(group)
        _check_node_group(catalog, plugin, version, full, caller)
        expanded.append(full)
    return expanded, uses


def template_node_groups(store: Store, caller: Caller, catalog: Catalog, plugin: str,
                         version: str, groups: list[Doc]
                         ) -> tuple[list[Doc], list[tuple[Kind, str]]]:
    """A cluster template's node groups as the template stored them, completed from their
    node group templates when it was saved: not looked up again with the caller's eyes (a
    public cluster template may use its owner's private node group templates, which the
    template pins). Checked against the plugin as it is now; the node group templates the
    caller may see are used, the ids of the others are left out (not the caller's to learn).
    """
    kept: list[Doc] = []
    uses: list[tuple[Kind, str]] = []
    check_node_group_names([group["name"] for group in groups])
    for group in groups:
        full = dict(group)
        template_id = full.get("node_group_template_id")
        if template_id:
            template = resources.load(store, NGT, template_id)
            if template.doc is not None and not all(full.get(k) for k in COMPLETE):
                # stored before templates were saved complete: complete it now
                full = {**{k: template.doc[k] for k in NODE_GROUP_TEMPLATE_FIELDS
                           if k in template.doc}, **full}
            if template.exists and caller.can_see(template.doc or {}):
                uses.append((NGT, template_id))
            else:
                del full["node_group_template_id"]
        _check_node_group(catalog, plugin, version, full, caller)
        kept.append(full)
    return kept, uses


COMPLETE = ("flavor_id", "node_processes")
"""What a node group must have, given or from its node group template."""


def _check_node_group(catalog: Catalog, plugin: str, version: str, group: Doc,
                      caller: Caller) -> None:
    for required in COMPLETE:
        if not group.get(required):
            raise Invalid(f"node group {group['name']!r} needs {required} or a"
                          " node_group_template_id")
    catalog.check_node_processes(plugin, version, group["node_processes"])
    catalog.check_flavor(group["flavor_id"])
    check_image(catalog, group.get("image_id"), plugin, version, caller,
                what=f"node group {group['name']!r}: image_id")


def create_cluster_template(store: Store, caller: Caller, catalog: Catalog,
                            fields: Doc) -> Doc:
    plugin, version = fields["plugin_name"], fields["plugin_version"]
    catalog.check_plugin(plugin, version)
    check_image(catalog, fields.get("default_image_id"), plugin, version, caller,
                what="default_image_id")
    groups, uses = expand_node_groups(store, caller, catalog, plugin, version,
                                      fields.get("node_groups", []))
    catalog.check_configs(plugin, version, fields.get("cluster_configs"), groups)
    if groups:
        catalog.check_cluster(plugin, version, groups)
    return resources.create(store, CT, caller, {**fields, "node_groups": groups}, uses=uses)


def update_cluster_template(store: Store, caller: Caller, catalog: Catalog,
                            template_id: str, changes: Doc) -> Doc:
    current = resources.owned(store, CT, template_id, caller).doc
    assert current is not None
    merged = {**current, **changes}
    plugin, version = merged["plugin_name"], merged["plugin_version"]
    catalog.check_plugin(plugin, version)
    if {"default_image_id", *IMAGE_BOUND} & set(changes):
        check_image(catalog, merged.get("default_image_id"), plugin, version, caller,
                    what="default_image_id")
    catalog.check_configs(plugin, version, merged.get("cluster_configs"),
                          merged.get("node_groups", []))
    if "node_groups" not in changes and not {"plugin_name", "plugin_version"} & set(changes):
        return resources.update(store, CT, template_id, caller, changes)
    groups, uses = expand_node_groups(store, caller, catalog, plugin, version,
                                      merged.get("node_groups", []))
    if groups:
        catalog.check_cluster(plugin, version, groups)
    return resources.update(store, CT, template_id, caller, {**changes, "node_groups": groups},
                            uses=uses)
