"""``/v2/node-group-templates`` and ``/v2/cluster-templates``."""

from __future__ import annotations

from flask import Blueprint, Response

from sahara_es.api import schemas
from sahara_es.api.pagination import page
from sahara_es.api.service import caller, service, shown
from sahara_es.api.views import bodies
from sahara_es.api.views.common import answer, body, no_content, no_params
from sahara_es.commands import resources, templates
from sahara_es.events.resources import Doc, Kind, public

blueprint = Blueprint("templates", __name__)

NGT = Kind.NODE_GROUP_TEMPLATE
CT = Kind.CLUSTER_TEMPLATE
TEMPLATE_FILTERS = ("plugin_name", "plugin_version", "name")
TEMPLATE_SORT = ("id", "name", "plugin_name", "plugin_version", "created_at", "updated_at")


def with_visible_templates(doc: Doc) -> Doc:
    """A cluster template or cluster as shown to the caller: its node groups name only the
    node group templates the caller may see (a public cluster template may use its owner's
    private ones, whose ids are not other projects' to learn)."""
    view = shown(doc)
    if caller().owns(doc) or not view.get("node_groups"):
        return view
    view["node_groups"] = [_group(g) for g in view["node_groups"]]
    return view


def _group(group: Doc) -> Doc:
    template_id = group.get("node_group_template_id")
    if not template_id:
        return group
    found = service().reads[NGT].get(template_id)
    if found is not None and caller().can_see(found):
        return group
    return {k: v for k, v in group.items() if k != "node_group_template_id"}


def node_group_template_view(doc: Doc) -> Doc:
    """A node group template with all of Sahara's keys."""
    return bodies.node_group_template(shown(doc))


def cluster_template_view(doc: Doc) -> Doc:
    """A cluster template with all of Sahara's keys, its node groups' included."""
    return bodies.cluster_template(with_visible_templates(doc))


@blueprint.post("/node-group-templates")
def create_node_group_template() -> Response:
    no_params()
    doc = templates.create_node_group_template(
        service().store, caller(), service().catalog, body(schemas.NodeGroupTemplateCreate))
    return answer("node_group_template", node_group_template_view(service().written(doc)),
                  202)


@blueprint.get("/node-group-templates")
def list_node_group_templates() -> Response:
    docs = (node_group_template_view(d) for d in service().visible(NGT, caller()))
    return answer(None, page(docs, envelope="node_group_templates", filters=TEMPLATE_FILTERS,
                             sort_fields=TEMPLATE_SORT))


@blueprint.get("/node-group-templates/<template_id>")
def show_node_group_template(template_id: str) -> Response:
    no_params()
    return answer("node_group_template",
                  node_group_template_view(service().get(NGT, template_id, caller())))


@blueprint.patch("/node-group-templates/<template_id>")
@blueprint.put("/node-group-templates/<template_id>")
def update_node_group_template(template_id: str) -> Response:
    no_params()
    doc = templates.update_node_group_template(
        service().store, caller(), service().catalog, template_id,
        body(schemas.NodeGroupTemplateUpdate))
    return answer("node_group_template", node_group_template_view(service().written(doc)),
                  202)


@blueprint.delete("/node-group-templates/<template_id>")
def delete_node_group_template(template_id: str) -> Response:
    no_params()
    resources.delete(service().store, NGT, template_id, caller())
    service().refresh(NGT, template_id)
    return no_content()


@blueprint.get("/node-group-templates/<template_id>/export")
def export_node_group_template(template_id: str) -> Response:
    no_params()
    doc = public(service().get(NGT, template_id, caller()))
    return answer("node_group_template", exported(doc, {
        "flavor_id": "{flavor_id}", "image_id": "{image_id}",
        "security_groups": "{security_groups}", "floating_ip_pool": "{floating_ip_pool}"}))


@blueprint.post("/cluster-templates")
def create_cluster_template() -> Response:
    no_params()
    doc = templates.create_cluster_template(
        service().store, caller(), service().catalog, body(schemas.ClusterTemplateCreate))
    return answer("cluster_template", cluster_template_view(service().written(doc)), 202)


@blueprint.get("/cluster-templates")
def list_cluster_templates() -> Response:
    docs = (cluster_template_view(d) for d in service().visible(CT, caller()))
    return answer(None, page(docs, envelope="cluster_templates", filters=TEMPLATE_FILTERS,
                             sort_fields=TEMPLATE_SORT))


@blueprint.get("/cluster-templates/<template_id>")
def show_cluster_template(template_id: str) -> Response:
    no_params()
    return answer("cluster_template",
                  cluster_template_view(service().get(CT, template_id, caller())))


@blueprint.patch("/cluster-templates/<template_id>")
@blueprint.put("/cluster-templates/<template_id>")
def update_cluster_template(template_id: str) -> Response:
    no_params()
    doc = templates.update_cluster_template(
        service().store, caller(), service().catalog, template_id,
        body(schemas.ClusterTemplateUpdate))
    return answer("cluster_template", cluster_template_view(service().written(doc)), 202)


@blueprint.delete("/cluster-templates/<template_id>")
def delete_cluster_template(template_id: str) -> Response:
    no_params()
    resources.delete(service().store, CT, template_id, caller())
    service().refresh(CT, template_id)
    return no_content()


@blueprint.get("/cluster-templates/<template_id>/export")
def export_cluster_template(template_id: str) -> Response:
    no_params()
    doc = public(service().get(CT, template_id, caller()))
    return answer("cluster_template", exported(doc, {
        "default_image_id": "{default_image_id}", "node_groups": "{node_groups}"}))


def exported(doc: Doc, placeholders: dict[str, str]) -> Doc:
    """A template as a reusable file: without identity and dates, with placeholders for
    what differs between clouds."""
    out = {k: v for k, v in doc.items()
           if k not in ("id", "project_id", "created_at", "updated_at", "is_default")}
    out.update(placeholders)
    return out
