"""The OpenAPI 3 document, generated from the marshmallow schemas (apispec), at
``/v2/openapi.json``.

Each operation is declared once here: its request schema, its answer's envelope and schema,
and its status; the paths come from the app's own URL rules, so the document cannot name a
route that does not exist.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, Response, jsonify
from marshmallow import Schema

from sahara_es.api import schemas as s
from sahara_es.api.versions import MAX_VERSION, text

Envelope = tuple[str, type[Schema], bool]  # (key, schema, many)
LIST_PARAMS = ("limit", "marker", "sort_by")

# endpoint -> (request schema, answer envelope, status, query parameters)
OPERATIONS: dict[str, tuple[type[Schema] | None, Envelope | None, int, tuple[str, ...]]] = {
    "plugins.list_plugins": (None, ("plugins", s.Plugin, True), 200, ()),
    "plugins.show_plugin": (None, ("plugin", s.Plugin, False), 200, ()),
    "plugins.show_plugin_version": (None, ("plugin", s.Plugin, False), 200, ()),
    "plugins.update_plugin": (s.PluginUpdate, ("plugin", s.Plugin, False), 202, ()),
    "plugins.list_job_types": (None, None, 200, ("type", "plugin_name", "plugin_version")),
    "templates.create_node_group_template": (
        s.NodeGroupTemplateCreate, ("node_group_template", s.NodeGroupTemplate, False), 202, ()),
    "templates.list_node_group_templates": (
        None, ("node_group_templates", s.NodeGroupTemplate, True), 200,
        ("plugin_name", "plugin_version", "name", *LIST_PARAMS)),
    "templates.show_node_group_template": (
        None, ("node_group_template", s.NodeGroupTemplate, False), 200, ()),
    "templates.update_node_group_template": (
        s.NodeGroupTemplateUpdate, ("node_group_template", s.NodeGroupTemplate, False), 202, ()),
    "templates.delete_node_group_template": (None, None, 204, ()),
    "templates.export_node_group_template": (None, None, 200, ()),
    "templates.create_cluster_template": (
        s.ClusterTemplateCreate, ("cluster_template", s.ClusterTemplate, False), 202, ()),
    "templates.list_cluster_templates": (
        None, ("cluster_templates", s.ClusterTemplate, True), 200,
        ("plugin_name", "plugin_version", "name", *LIST_PARAMS)),
    "templates.show_cluster_template": (
        None, ("cluster_template", s.ClusterTemplate, False), 200, ()),
    "templates.update_cluster_template": (
        s.ClusterTemplateUpdate, ("cluster_template", s.ClusterTemplate, False), 202, ()),
    "templates.delete_cluster_template": (None, None, 204, ()),
    "templates.export_cluster_template": (None, None, 200, ()),
    "clusters.create_cluster": (s.ClusterCreate, ("cluster", s.Cluster, False), 202, ()),
    "clusters.list_clusters": (None, ("clusters", s.Cluster, True), 200,
                               ("plugin_name", "plugin_version", "name", "status",
                                *LIST_PARAMS)),
    "clusters.show_cluster": (None, ("cluster", s.Cluster, False), 200, ("show_progress",)),
    "clusters.scale_cluster": (s.ClusterScale, ("cluster", s.Cluster, False), 202, ()),
    "clusters.update_cluster": (s.ClusterUpdate, ("cluster", s.Cluster, False), 202, ()),
    "clusters.delete_cluster": (None, None, 204, ()),
    "edp.create_data_source": (s.DataSourceCreate, ("data_source", s.DataSource, False), 202,
                               ()),
    "edp.list_data_sources": (None, ("data_sources", s.DataSource, True), 200,
                              ("type", "name", *LIST_PARAMS)),
    "edp.show_data_source": (None, ("data_source", s.DataSource, False), 200, ()),
    "edp.update_data_source": (s.DataSourceUpdate, ("data_source", s.DataSource, False), 202,
                               ()),
    "edp.delete_data_source": (None, None, 204, ()),
    "edp.create_job_binary": (s.JobBinaryCreate, ("job_binary", s.JobBinary, False), 202, ()),
    "edp.list_job_binaries": (None, ("binaries", s.JobBinary, True), 200,
                              ("name", *LIST_PARAMS)),
    "edp.show_job_binary": (None, ("job_binary", s.JobBinary, False), 200, ()),
    "edp.job_binary_data": (None, None, 200, ()),
    "edp.update_job_binary": (s.JobBinaryUpdate, ("job_binary", s.JobBinary, False), 202, ()),
    "edp.delete_job_binary": (None, None, 204, ()),
    "edp.create_job_template": (s.JobTemplateCreate, ("job_template", s.JobTemplate, False),
                                202, ()),
    "edp.list_job_templates": (None, ("job_templates", s.JobTemplate, True), 200,
                               ("type", "name", *LIST_PARAMS)),
    "edp.show_job_template": (None, ("job_template", s.JobTemplate, False), 200, ()),
    "edp.job_config_hints": (None, None, 200, ("plugin_name", "plugin_version")),
    "edp.update_job_template": (s.JobTemplateUpdate, ("job_template", s.JobTemplate, False),
                                202, ()),
    "edp.delete_job_template": (None, None, 204, ()),
    "edp.run_job": (s.JobCreate, ("job", s.Job, False), 202, ()),
    "edp.list_jobs": (None, ("jobs", s.Job, True), 200,
                      ("status", "cluster_id", *LIST_PARAMS)),
    "edp.show_job": (None, ("job", s.Job, False), 200, ("refresh_status",)),
    "edp.update_job": (s.JobUpdate, ("job", s.Job, False), 202, ()),
    "edp.delete_job": (None, None, 204, ()),
}

ERRORS = {400: "Bad request", 401: "No valid token", 403: "Forbidden", 404: "Not found",
          406: "API version not supported", 409: "Conflict with the resource's state"}


def build(app: Flask) -> dict[str, Any]:
    spec = APISpec(title="sahara-es data processing API", version=text(MAX_VERSION),
                   openapi_version="3.0.3", plugins=[MarshmallowPlugin()],
                   info={"description": "Sahara's API v2, on an event-sourced store."})
    spec.components.schema("Error", schema=s.Error)
    spec.components.security_scheme("token", {"type": "apiKey", "in": "header",
                                              "name": "X-Auth-Token"})
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        declared = OPERATIONS.get(rule.endpoint)
        if declared is None or "<project_id>" in rule.rule:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule.endpoint, rule.arguments,
                                                                    declared)
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    document: dict[str, Any] = spec.to_dict()
    document["security"] = [{"token": []}]
    return document


def _operation(endpoint: str, arguments: Any,
               declared: tuple[type[Schema] | None, Envelope | None, int, tuple[str, ...]]
               ) -> dict[str, Any]:
    request_schema, envelope, status, query = declared
    operation: dict[str, Any] = {"operationId": endpoint.replace(".", "_"),
                                 "tags": [endpoint.split(".")[0]]}
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in sorted(arguments)]
    parameters += [{"name": name, "in": "query", "required": False,
                    "schema": _query_schema(name)} for name in query]
    if parameters:
        operation["parameters"] = parameters
    if request_schema is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": request_schema}}}
    responses: dict[str, Any] = {}
    if status == 204:
        responses["204"] = {"description": "Accepted; nothing to return"}
    elif envelope is None:
        responses[str(status)] = {"description": "OK", "content": {
            "application/json": {"schema": {"type": "object"}}}}
    else:
        key, schema, many = envelope
        inner: Any = {"type": "array", "items": schema} if many else schema
        props: dict[str, Any] = {key: inner}
        if many:
            props["markers"] = {"type": "object"}
            props["links"] = {"type": "array", "items": {"type": "object"}}
        responses[str(status)] = {"description": "OK", "content": {"application/json": {
            "schema": {"type": "object", "properties": props, "required": [key]}}}}
    for code, description in ERRORS.items():
        responses[str(code)] = {"description": description, "content": {
            "application/json": {"schema": "Error"}}}
    operation["responses"] = responses
    return operation


def _query_schema(name: str) -> dict[str, Any]:
    if name == "limit":
        return {"type": "integer", "minimum": 1, "maximum": 1000}
    if name in ("show_progress", "refresh_status"):
        return {"type": "string", "enum": ["true", "false", "True", "False"]}
    return {"type": "string"}


def init_app(app: Flask) -> None:
    cached: dict[str, Any] = {}

    @app.get("/v2/openapi.json")
    def openapi_document() -> Response:
        if not cached:
            cached.update(build(app))
        return jsonify(cached)
