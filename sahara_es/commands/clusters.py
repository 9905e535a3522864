"""Cluster commands: create (``count`` of them), scale, update, verify, delete.

The commands record what was asked; provisioning workflows do the work and record its
progress in the same stream (status changes, steps, instances). State gates say what may be
asked when: a cluster scales and verifies only when Active, and Deleting is final.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sahara_es.commands import keypairs, resources
from sahara_es.commands.caller import Caller
from sahara_es.commands.catalog import Catalog, NoQuota, Quota, needs
from sahara_es.commands.errors import Conflict, Invalid, Protected, QuotaExceeded
from sahara_es.commands.images import check_image
from sahara_es.commands.templates import CT, expand_node_groups, template_node_groups
from sahara_es.events import resources as ev
from sahara_es.events.resources import CLUSTER_FINAL, Doc, Kind
from sahara_es.store import ConcurrencyConflict, Store

log = logging.getLogger(__name__)

CLUSTER = Kind.CLUSTER

INITIAL_STATUS = "Validating"

FROM_TEMPLATE = ("node_groups", "cluster_configs", "anti_affinity", "default_image_id",
                 "neutron_management_network", "use_autoconfig", "shares", "domain_name")
"""What a cluster takes from its cluster template unless the request sets it."""


def create_clusters(store: Store, caller: Caller, catalog: Catalog, fields: Doc,
                    quota: Quota | None = None,
                    undone: Callable[[str], None] | None = None) -> list[Doc]:
    """One cluster, or ``count`` of them named ``<name>-1``… (as Sahara v2 does); each claims
    its instances, cores and RAM from the project's quota first. All or nothing: when any of
    them is refused (quota, a name in use...), none is left behind, nor its quota; ``undone``
    hears of each cluster created and deleted again (so the caller's reads show it gone)."""
    quota = quota or NoQuota()
    count = fields.pop("count", None) or 1
    template_id = fields.get("cluster_template_id")
    plugin, version = fields["plugin_name"], fields["plugin_version"]
    catalog.check_plugin(plugin, version)
    keypairs.require_keypair(store, caller.project_id, fields.get("user_keypair_id"))
    uses: list[tuple[Kind, str]] = []
    groups_from_template = False
    if template_id:
        template = resources.referenced(store, CT, template_id, caller).doc
        assert template is not None
        if (template["plugin_name"], template["plugin_version"]) != (plugin, version):
            raise Invalid(f"cluster template {template_id} is for {template['plugin_name']}"
                          f" {template['plugin_version']}, not {plugin} {version}")
        groups_from_template = fields.get("node_groups") in (None, []) and bool(
            template.get("node_groups"))
        for key in FROM_TEMPLATE:
            if fields.get(key) in (None, [], {}) and template.get(key) not in (None, [], {}):
                fields[key] = template[key]
        uses.append((CT, template_id))
    if not fields.get("node_groups"):
        raise Invalid("a cluster needs node_groups, given or from its cluster_template_id")
    check_image(catalog, fields.get("default_image_id"), plugin, version, caller,
                what="default_image_id")
    # a template's node groups were completed when it was saved, with its owner's eyes
    expand = template_node_groups if groups_from_template else expand_node_groups
    groups, template_uses = expand(store, caller, catalog, plugin, version,
                                   fields["node_groups"])
    catalog.check_cluster(plugin, version, groups, fields.get("cluster_configs"))
    fields.update(node_groups=[{**g, "instances": []} for g in groups],
                  status=INITIAL_STATUS, status_description="", info={},
                  provision_progress=[])
    if store.region is not None:  # the cluster's home: where its resources live
        fields["region"] = store.region
    uses += template_uses
    names = [fields["name"]] if count == 1 else [f"{fields['name']}-{i}"
                                                 for i in range(1, count + 1)]
    asked = needs(catalog, groups)
    ids = [resources.new_id() for _ in names]
    claimed: list[str] = []
    created: list[Doc] = []
    try:
        # the whole count is admitted before any cluster exists, or none of it is
        for cluster_id in ids:
            try:
                quota.claim(caller.project_id, cluster_id, **asked)
            except QuotaExceeded as exceeded:
                if count == 1:
                    raise
                raise QuotaExceeded(f"{count} clusters were asked for and not all fit, so"
                                    f" none was created: {exceeded.message}") from None
            claimed.append(cluster_id)
        for name, cluster_id in zip(names, ids, strict=True):
            created.append(resources.create(store, CLUSTER, caller, {**fields, "name": name},
                                            uses=sorted(set(uses)), resource_id=cluster_id))
    except BaseException:
        for doc in reversed(created):  # e.g. a later name was taken: undo the earlier ones
            _undo_create(store, doc["id"], caller)
            if undone is not None:
                undone(doc["id"])
        for cluster_id in claimed:
            with contextlib.suppress(Exception):
                quota.release(caller.project_id, cluster_id)
        raise
    return created


def _undo_create(store: Store, cluster_id: str, caller: Caller) -> None:
    """Delete a cluster this request created, reading it again while its stream moves on (its
    creation's workflow may be recording its first steps)."""
    for _ in range(UNDO_ATTEMPTS):
        try:
            resources.finish_delete(store, resources.load(store, CLUSTER, cluster_id), caller)
            return
        except ConcurrencyConflict:
            continue
        except Exception:  # the request fails anyway; what is left is an ordinary cluster
            log.warning("could not undo the creation of cluster %s", cluster_id, exc_info=True)
            return


UNDO_ATTEMPTS = 10


@resources.rereads_on_conflict
def scale_cluster(store: Store, caller: Caller, catalog: Catalog, cluster_id: str,
                  resize: list[dict[str, Any]], add: list[Doc],
                  quota: Quota | None = None) -> Doc:
    """Ask for new node group sizes and new node groups; only an Active cluster scales. What
    it grows by is claimed from the quota under ``<cluster id>.<version>``, released when
    the scale is undone or the cluster deleted."""
    quota = quota or NoQuota()
    aggregate = resources.owned(store, CLUSTER, cluster_id, caller)
    doc = aggregate.doc
    assert doc is not None
    _require_status(doc, "Active", "scaled")
    if doc.get("is_protected"):
        raise Protected(f"cluster {cluster_id} is protected: set is_protected to false first")
    existing = {g["name"]: g for g in doc["node_groups"]}
    sizes: dict[str, int] = {}
    removals: dict[str, list[str]] = {}
    for item in resize:
        name = item["name"]
        if name not in existing:
            raise Invalid(f"cluster {cluster_id} has no node group {name!r}")
        sizes[name] = item["count"]
        if item.get("instances"):
            removals[name] = list(item["instances"])
    plugin, version = doc["plugin_name"], doc["plugin_version"]
    taken = {n.lower() for n in existing}
    clash = sorted(g["name"] for g in add if g["name"].lower() in taken)
    if clash:
        raise Invalid(f"node groups {', '.join(clash)} already exist in cluster {cluster_id}"
                      " (node group names are unique regardless of case)")
    added, uses = expand_node_groups(store, caller, catalog, plugin, version, add)
    catalog.check_scaling(plugin, version, doc["node_groups"], sizes, added,
                          doc.get("cluster_configs"))
    previous = {name: existing[name]["count"] for name in sizes}
    growth = [{**existing[name], "count": max(0, count - existing[name]["count"])}
              for name, count in sizes.items()] + added
    holder = f"{cluster_id}.{aggregate.version + 1}"
    asked = needs(catalog, growth)
    if asked["instances"]:
        quota.claim(doc["project_id"], holder, **asked)
    try:
        resources.reference(store, uses, aggregate.stream_id, caller)
        event = ev.ClusterScaleRequested(resize=sizes, add_node_groups=[
            {**g, "instances": []} for g in added], instances=removals, previous=previous,
            quota_holder=holder if asked["instances"] else "")
        try:
            return resources.append(store, aggregate, [event], caller)
        except BaseException:
            resources.unreference(store, uses, aggregate.stream_id, caller)
            raise
    except BaseException:
        quota.release(doc["project_id"], holder)
        raise


@resources.rereads_on_conflict
def update_cluster(store: Store, caller: Caller, cluster_id: str, changes: Doc) -> Doc:
    """PATCH: name, description, is_public, is_protected, shares; ``verification`` starts a
    health check."""
    changes = dict(changes)  # read again on a conflict: the caller's fields stay whole
    verification = changes.pop("verification", None)
    rebuild = changes.pop("rebuild_failed_nodes", False)
    update_keypair = changes.pop("update_keypair", False)
    aggregate = resources.owned(store, CLUSTER, cluster_id, caller)
    doc = aggregate.doc
    assert doc is not None
    if doc["status"] == CLUSTER_FINAL:
        raise Conflict(f"cluster {cluster_id} is being deleted")
    if changes:
        if doc.get("is_protected") and not (set(changes) == {"is_protected"}
                                            and changes["is_protected"] is False):
            raise Protected(f"cluster {cluster_id} is protected: set is_protected to false"
                            " first")
        doc = resources.update(store, CLUSTER, cluster_id, caller, changes)
        aggregate = resources.load(store, CLUSTER, cluster_id)
    if verification is not None:
        if verification.get("status") != "START":
            raise Invalid("verification: only {\"status\": \"START\"} is accepted")
        _require_status(doc, "Active", "verified")
        doc = resources.append(store, aggregate, [
            ev.ClusterVerificationRequested(str(uuid.uuid4()))], caller)
    if rebuild:
        _require_status(doc, "Active", "rebuilt")
        failed = list(doc.get("failed_nodes") or [])
        if not failed:
            raise Conflict(f"cluster {cluster_id} has no failed nodes to rebuild")
        aggregate = resources.load(store, CLUSTER, cluster_id)
        doc = resources.append(store, aggregate, [ev.ClusterRebuildRequested(failed)], caller)
    if update_keypair:
        doc = _request_keypair_update(store, caller, cluster_id)
    return doc


def _request_keypair_update(store: Store, caller: Caller, cluster_id: str) -> Doc:
    """Ask for the current public key of the cluster's key pair to be pushed to its nodes
    (Sahara's ``update_keypair``): only an Active cluster's, and only one that names a key
    pair its project still has."""
    aggregate = resources.load(store, CLUSTER, cluster_id)
    doc = aggregate.doc
    assert doc is not None
    _require_status(doc, "Active", "given its key pair again")
    name = doc.get("user_keypair_id")
    if not name:
        raise Invalid(f"cluster {cluster_id} has no user_keypair_id: there is no key pair to"
                      " update")
    keypairs.require_keypair(store, doc["project_id"], name)
    return resources.append(store, aggregate, [ev.ClusterKeypairUpdateRequested(name)],
                            caller)


@resources.rereads_on_conflict
def delete_cluster(store: Store, caller: Caller, cluster_id: str, *,
                   force: bool = False) -> Doc:
    """Move the cluster to Deleting (accepted at once; deleting it again changes nothing).

    ``force`` (Sahara's force delete) deletes it without waiting for what provisions it,
    and supersedes a deletion already under way (which may be stuck stopping services on
    nodes that no longer answer); a protected cluster is refused all the same, as Sahara."""
    aggregate = resources.owned(store, CLUSTER, cluster_id, caller)
    doc = aggregate.doc
    assert doc is not None
    if doc["status"] == CLUSTER_FINAL and (not force or doc[ev.META].get("forced")):
        return doc
    if doc.get("is_protected"):
        raise Protected(f"cluster {cluster_id} is protected: set is_protected to false first")
    event = (ev.ClusterForceDeletionRequested(doc["status"]) if force
             else ev.ClusterDeletionRequested(doc["status"]))
    return resources.append(store, aggregate, [event], caller)


def _require_status(doc: Doc, status: str, action: str) -> None:
    if doc["status"] != status:
        raise Conflict(f"cluster {doc['id']} is {doc['status']}; it can be {action} only when"
                       f" {status}")
