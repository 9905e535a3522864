"""``/v2/clusters``: create (and ``count`` of them), show with progress, scale, update,
delete."""

from __future__ import annotations

from flask import Blueprint, Response, request

from sahara_es.api import schemas
from sahara_es.api.errors import bad_request
from sahara_es.api.pagination import page
from sahara_es.api.service import caller, service
from sahara_es.api.views import bodies
from sahara_es.api.views.common import answer, body, location, no_content, no_params
from sahara_es.api.views.templates import with_visible_templates
from sahara_es.commands import clusters
from sahara_es.engine.crashpoints import CLUSTER_RECORDED, crash_point
from sahara_es.events.resources import Doc, Kind
from sahara_es.projections.resources import management_public_key

blueprint = Blueprint("clusters", __name__)

CLUSTER = Kind.CLUSTER


def cluster_view(doc: Doc, show_progress: bool = False) -> Doc:
    """A cluster with all of Sahara's keys; its steps' events only when asked for."""
    view = bodies.cluster(with_visible_templates(doc))
    if view["management_public_key"] is None and "management_public_key" not in doc:
        # what a command returns is folded from the cluster's stream alone: the key is in its own
        view["management_public_key"] = management_public_key(service().store, doc["id"])
    steps = view["provision_progress"]
    if not show_progress:
        view["provision_progress"] = [{k: v for k, v in s.items() if k != "events"}
                                      for s in steps]
    return view


def _show_progress() -> bool:
    raw = request.args.get("show_progress", "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise bad_request("show_progress must be true or false")
    return raw in ("true", "1")


@blueprint.post("/clusters")
def create_cluster() -> Response:
    no_params()
    fields = body(schemas.ClusterCreate)
    many = (fields.get("count") or 1) > 1
    docs = clusters.create_clusters(service().store, caller(), service().catalog, fields,
                                    service().quota,
                                    undone=lambda undone: service().refresh(CLUSTER, undone))
    crash_point(CLUSTER_RECORDED)  # tests only: the engines' handoff must still provision it
    for doc in docs:
        service().written(doc)
        service().cluster_created(doc)
    if many:
        return answer("clusters", [{"cluster": cluster_view(d)} for d in docs], 202)
    return answer("cluster", cluster_view(docs[0]), 202,
                  location=location(f"clusters/{docs[0]['id']}"))


@blueprint.get("/clusters")
def list_clusters() -> Response:
    docs = (cluster_view(d) for d in service().visible(CLUSTER, caller()))
    return answer(None, page(docs, envelope="clusters",
                             filters=("plugin_name", "plugin_version", "name", "status"),
                             sort_fields=("id", "name", "plugin_name", "plugin_version",
                                          "status", "created_at", "updated_at")))


@blueprint.get("/clusters/<cluster_id>")
def show_cluster(cluster_id: str) -> Response:
    no_params("show_progress")
    doc = service().get(CLUSTER, cluster_id, caller())
    return answer("cluster", cluster_view(doc, _show_progress()))


@blueprint.put("/clusters/<cluster_id>")
def scale_cluster(cluster_id: str) -> Response:
    no_params()
    fields = body(schemas.ClusterScale)
    doc = clusters.scale_cluster(service().store, caller(), service().catalog, cluster_id,
                                 fields.get("resize_node_groups", []),
                                 fields.get("add_node_groups", []), service().quota)
    service().written(doc)
    return answer("cluster", cluster_view(doc), 202, location=location(f"clusters/{cluster_id}"))


@blueprint.patch("/clusters/<cluster_id>")
def update_cluster(cluster_id: str) -> Response:
    no_params()
    fields = body(schemas.ClusterUpdate)
    verifying = "verification" in fields
    rebuilding = bool(fields.get("rebuild_failed_nodes"))
    rekeying = bool(fields.get("update_keypair"))
    doc = clusters.update_cluster(service().store, caller(), cluster_id, fields)
    service().written(doc)
    if rebuilding or verifying or rekeying:
        return answer("cluster", cluster_view(doc), 202,
                      location=location(f"clusters/{cluster_id}"))
    return answer("cluster", cluster_view(doc), 202)


@blueprint.delete("/clusters/<cluster_id>")
def delete_cluster(cluster_id: str) -> Response:
    no_params()
    force = bool(body(schemas.ClusterDelete).get("force"))
    doc = clusters.delete_cluster(service().store, caller(), cluster_id, force=force)
    service().written(doc)
    service().deletion_requested(doc, caller())
    service().refresh(CLUSTER, cluster_id)
    if force:  # as Sahara: 200 with the Heat stack's name, which local nodes have none of
        return answer(None, {"stack_name": None}, 200,
                      location=location(f"clusters/{cluster_id}"))
    return no_content(location=location(f"clusters/{cluster_id}"))
