"""Sahara's full response bodies: every key a Sahara client reads, present in every answer.

A resource's representation holds what its caller set and what its workflows recorded;
Sahara's answers carry every key of the resource, with Sahara's defaults (its conductor's and
its database's) for the others. The views pass each representation through the function of
its kind here, after ``shown`` took the service's own fields out.

What Sahara gave a database id and sahara-es does not record (a cluster's node groups, its
instances, a verification's checks) gets a UUID derived from what names it, so that it is the
same on every read.
"""

from __future__ import annotations

import copy
import uuid

from sahara_es.events.resources import Doc

IDS = uuid.UUID("0b9c3b7e-5d6a-4c1f-9a57-2f3e4d5c6b7a")
"""The namespace of the ids derived here (uuid5): never to change, ids would change too."""

NODE_GROUP_DEFAULTS: Doc = {
    "image_id": None,
    "node_configs": {},
    "volumes_per_node": 0,
    "volumes_size": 0,
    "volume_type": None,
    "volume_mount_prefix": "/volumes/disk",
    "volume_local_to_instance": False,
    "volumes_availability_zone": None,
    "boot_from_volume": False,
    "boot_volume_type": None,
    "boot_volume_availability_zone": None,
    "boot_volume_local_to_instance": False,
    "floating_ip_pool": None,
    "security_groups": None,
    "auto_security_group": False,
    "availability_zone": None,
    "is_proxy_gateway": False,
    "use_autoconfig": True,
    "shares": None,
}
"""What a node group is, unless its template or request says otherwise (Sahara's)."""

SHARED_DEFAULTS: Doc = {"description": None, "is_public": False, "is_protected": False}

TEMPLATE_DEFAULTS: Doc = {**SHARED_DEFAULTS, "is_default": False}

NODE_GROUP_TEMPLATE_DEFAULTS: Doc = {**NODE_GROUP_DEFAULTS, **TEMPLATE_DEFAULTS}

NODE_GROUP_IN_CLUSTER_DEFAULTS: Doc = {**NODE_GROUP_TEMPLATE_DEFAULTS,
                                       "node_group_template_id": None}

CLUSTER_SHAPE_DEFAULTS: Doc = {
    **SHARED_DEFAULTS,
    "anti_affinity": [],
    "cluster_configs": {},
    "default_image_id": None,
    "neutron_management_network": None,
    "domain_name": None,
    "shares": None,
    "use_autoconfig": True,
    "node_groups": [],
}
"""What a cluster template and a cluster have in common."""

CLUSTER_TEMPLATE_DEFAULTS: Doc = {**CLUSTER_SHAPE_DEFAULTS, "is_default": False}

CLUSTER_DEFAULTS: Doc = {
    **CLUSTER_SHAPE_DEFAULTS,
    "cluster_template_id": None,
    "user_keypair_id": None,
    "is_transient": False,
    "anti_affinity_ratio": 1,
    "management_public_key": None,
    "trust_id": None,
    "status_description": "",
    "info": {},
    "provision_progress": [],
    "verification": {},
    "region": None,
    "workflow_owner": None,
}

INSTANCE_DEFAULTS: Doc = {"volumes": [], "storage_devices_number": 0, "dns_hostname": None,
                          "updated_at": None}

DATA_SOURCE_DEFAULTS: Doc = dict(SHARED_DEFAULTS)
JOB_BINARY_DEFAULTS: Doc = dict(SHARED_DEFAULTS)
JOB_TEMPLATE_DEFAULTS: Doc = {**SHARED_DEFAULTS, "mains": [], "libs": [], "interface": []}
JOB_DEFAULTS: Doc = {
    "description": None,  # Sahara's jobs have none; the issue asks every EDP body to carry it
    "is_public": False, "is_protected": False, "input_id": None, "output_id": None,
    "job_configs": {}, "interface": {}, "data_source_urls": {}, "info": {},
    "start_time": None, "end_time": None, "engine_job_id": None, "return_code": None,
}


def completed(defaults: Doc, view: Doc) -> Doc:
    """``view`` with every key of ``defaults`` it lacks (the defaults copied, never shared)."""
    return {**{k: copy.deepcopy(v) for k, v in defaults.items() if k not in view}, **view}


def derived_id(*names: str) -> str:
    """A UUID that is the same for the same names, on every read."""
    return str(uuid.uuid5(IDS, "/".join(names)))


def node_group_id(owner_id: str, name: str) -> str:
    """The id of node group ``name`` of a cluster or cluster template."""
    return derived_id(owner_id, "node-group", name)


def instance_id(cluster_id: str, instance_name: str) -> str:
    return derived_id(cluster_id, "instance", instance_name)


def node_group_template(view: Doc) -> Doc:
    return completed(NODE_GROUP_TEMPLATE_DEFAULTS, view)


def cluster_template(view: Doc) -> Doc:
    body = completed(CLUSTER_TEMPLATE_DEFAULTS, view)
    body["node_groups"] = [_node_group(body, g) for g in body["node_groups"]]
    return body


def cluster(view: Doc) -> Doc:
    """A cluster with its node groups, instances, progress and verification complete."""
    body = completed(CLUSTER_DEFAULTS, view)
    body["node_groups"] = [_node_group(body, {"instances": [], **g})
                           for g in body["node_groups"]]
    group_ids = {g["name"]: g["id"] for g in body["node_groups"]}
    body["provision_progress"] = [_step(body, s, group_ids)
                                  for s in body["provision_progress"]]
    if body["verification"]:
        body["verification"] = _verification(body, body["verification"])
    return body


def _node_group(owner: Doc, group: Doc) -> Doc:
    """A node group of a cluster or cluster template; a cluster's with its instances. Node
    groups have no dates of their own: they are their owner's."""
    body = completed({**NODE_GROUP_IN_CLUSTER_DEFAULTS,
                      "id": node_group_id(owner["id"], group["name"]),
                      "created_at": owner.get("created_at"),
                      "updated_at": owner.get("updated_at")}, group)
    if "instances" in group:
        body["instances"] = [_instance(owner, i) for i in group["instances"]]
    return body


def _instance(cluster_doc: Doc, instance: Doc) -> Doc:
    name = instance["instance_name"]
    domain = cluster_doc.get("domain_name")
    return {**completed(INSTANCE_DEFAULTS, instance),
            "id": instance_id(cluster_doc["id"], name),
            "dns_hostname": instance.get("dns_hostname") or (
                f"{name}.{domain.strip('.')}" if domain else None)}


def _step(cluster_doc: Doc, step: Doc, group_ids: dict[str, str]) -> Doc:
    body = completed({"step_type": "", "project_id": cluster_doc.get("project_id"),
                      "cluster_id": cluster_doc["id"]}, step)
    if "events" in step:
        body["events"] = [_step_event(cluster_doc, e, group_ids) for e in step["events"]]
    return body


def _step_event(cluster_doc: Doc, event: Doc, group_ids: dict[str, str]) -> Doc:
    """A node's event in a step: its ``node_group_id`` the node group's id (recorded as the
    group's name; a group removed since gets the id it had)."""
    group = event.get("node_group_id") or ""
    return {**completed({"updated_at": None}, event),
            "node_group_id": group_ids.get(group) or (
                node_group_id(cluster_doc["id"], group) if group else None)}


def _verification(cluster_doc: Doc, verification: Doc) -> Doc:
    """The last health check, with Sahara's ids and dates (a check's are its
    verification's)."""
    body = completed({"cluster_id": cluster_doc["id"], "status": None, "checks": [],
                      "created_at": cluster_doc.get("updated_at"),
                      "updated_at": cluster_doc.get("updated_at")}, verification)
    body["checks"] = [completed({
        "id": derived_id(str(body.get("id")), "check", str(check.get("name"))),
        "verification_id": body.get("id"), "description": None,
        "created_at": body["created_at"], "updated_at": body["updated_at"]}, check)
        for check in body["checks"]]
    return body


def data_source(view: Doc) -> Doc:
    return completed(DATA_SOURCE_DEFAULTS, view)


def job_binary(view: Doc) -> Doc:
    return completed(JOB_BINARY_DEFAULTS, view)


def job_template(view: Doc) -> Doc:
    return completed(JOB_TEMPLATE_DEFAULTS, view)


def job(view: Doc) -> Doc:
    return completed(JOB_DEFAULTS, view)

