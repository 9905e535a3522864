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
from sahara_es.api.versions import HEADER, MAX_VERSION, SERVICE, text

Envelope = tuple[str, type[Schema], bool]  # (key, schema, many)
LIST_PARAMS = ("limit", "marker", "sort_by")
TEMPLATE_SORT = ("id", "name", "plugin_name", "plugin_version", "created_at", "updated_at")

# endpoint -> (request schema, answer envelope, status, query parameters)
OPERATIONS: dict[str, tuple[type[Schema] | None, Envelope | None, int, tuple[str, ...]]] = {
    "plugins.list_plugins": (None, ("plugins", s.Plugin, True), 200, ()),
    "plugins.show_plugin": (None, ("plugin", s.Plugin, False), 200, ()),
    "plugins.show_plugin_version": (None, ("plugin", s.Plugin, False), 200, ()),
    "plugins.update_plugin": (s.PluginUpdate, ("plugin", s.Plugin, False), 202, ()),
    "plugins.list_job_types": (None, ("job_types", s.JobType, True), 200,
                               ("type", "plugin_name", "plugin_version")),
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
    "templates.export_node_group_template": (
        None, ("node_group_template", s.Exported, False), 200, ()),
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
    "templates.export_cluster_template": (
        None, ("cluster_template", s.Exported, False), 200, ()),
    "clusters.create_cluster": (s.ClusterCreate, ("cluster", s.Cluster, False), 202, ()),
    "clusters.list_clusters": (None, ("clusters", s.Cluster, True), 200,
                               ("plugin_name", "plugin_version", "name", "status",
                                *LIST_PARAMS)),
    "clusters.show_cluster": (None, ("cluster", s.Cluster, False), 200, ("show_progress",)),
    "clusters.scale_cluster": (s.ClusterScale, ("cluster", s.Cluster, False), 202, ()),
    "clusters.update_cluster": (s.ClusterUpdate, ("cluster", s.Cluster, False), 202, ()),
    "clusters.delete_cluster": (s.ClusterDelete, None, 204, ()),
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
    "edp.job_config_hints": (None, ("job_config", s.ConfigHints, False), 200,
                             ("plugin_name", "plugin_version")),
    "edp.update_job_template": (s.JobTemplateUpdate, ("job_template", s.JobTemplate, False),
                                202, ()),
    "edp.delete_job_template": (None, None, 204, ()),
    "edp.run_job": (s.JobCreate, ("job", s.Job, False), 202, ()),
    "edp.list_jobs": (None, ("jobs", s.Job, True), 200,
                      ("status", "cluster_id", *LIST_PARAMS)),
    "edp.show_job": (None, ("job", s.Job, False), 200, ("refresh_status",)),
    "edp.update_job": (s.JobUpdate, ("job", s.Job, False), 202, ()),
    "edp.delete_job": (None, None, 204, ()),
    "images.list_images": (None, ("images", s.Image, True), 200,
                           ("name", "tags", "username", *LIST_PARAMS)),
    "images.show_image": (None, ("image", s.Image, False), 200, ()),
    "images.register_image": (s.ImageRegister, ("image", s.Image, False), 202, ()),
    "images.unregister_image": (None, None, 204, ()),
    "images.image_tags": (None, None, 200, ()),
    "images.set_image_tags": (s.ImageTags, None, 200, ()),
    "images.remove_image_tags": (None, None, 204, ()),
}

ERRORS = {400: "Bad request", 401: "No valid token", 403: "Forbidden", 404: "Not found",
          406: "API version not supported", 409: "Conflict with the resource's state",
          413: "The request body is larger than the service's limit (1 MiB by default)",
          503: "The store could not complete the request; retry after Retry-After seconds"}

PAGED = {endpoint for endpoint, (_, _, _, query) in OPERATIONS.items() if "limit" in query}
MANY_CREATED = {"clusters.create_cluster": "clusters"}
"""Operations answering, when asked for several (``count``), a list of enveloped items."""
RAW = {"edp.job_binary_data": "application/octet-stream"}
"""Operations answering with bytes rather than JSON."""

SORT_FIELDS = {
    "templates.list_node_group_templates": TEMPLATE_SORT,
    "templates.list_cluster_templates": TEMPLATE_SORT,
    "clusters.list_clusters": ("id", "name", "plugin_name", "plugin_version", "status",
                               "created_at", "updated_at"),
    "edp.list_data_sources": ("id", "name", "type", "created_at", "updated_at"),
    "edp.list_job_binaries": ("id", "name", "created_at", "updated_at"),
    "edp.list_job_templates": ("id", "name", "type", "created_at", "updated_at"),
    "edp.list_jobs": ("id", "job_template_id", "cluster_id", "status", "created_at",
                      "updated_at"),
    "images.list_images": ("id", "name", "created", "updated"),
}
"""What each list sorts by (``sort_by``, ``-`` first for descending)."""

ANSWER_HEADERS = {
    HEADER: {"description": "The API version that answered", "required": True,
             "schema": {"type": "string", "pattern": rf"^{SERVICE} \d+\.\d+$"}},
    "X-Openstack-Request-Id": {"description": "The request's id, as in the service log",
                               "required": True, "schema": {"type": "string"}},
}
ERROR_HEADERS = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    503: {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": r"^\d+$"}}},
}
EXTRA_RESPONSES = {"clusters.delete_cluster": {"200": {
    "description": "Forced (force: true in the body): Sahara's answer, naming no Heat stack",
    "headers": dict(ANSWER_HEADERS), "content": {"application/json": {"schema": {
        "type": "object", "required": ["stack_name"], "additionalProperties": False,
        "properties": {"stack_name": {"type": "string", "nullable": True}}}}}}}}
"""Answers an operation gives besides its usual one."""
OPTIONAL_BODY = {"clusters.delete_cluster"}
"""Operations whose request body may be left out."""


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
            operation = _operation(rule.endpoint, rule.arguments, declared)
            if method == "PUT" and rule.endpoint.split(".")[1].startswith("update_"):
                # PUT is kept beside PATCH for older clients; operation ids are unique
                operation["operationId"] += "_put"
            paths.setdefault(path, {})[method.lower()] = operation
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
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "string", "minLength": 1}}
                  for name in sorted(arguments)]
    parameters += [{"name": name, "in": "query", "required": False,
                    "schema": _query_schema(endpoint, name)} for name in query]
    parameters.append({"name": HEADER, "in": "header", "required": False,
                       "description": f"The version wanted: '{SERVICE} 2.0' or"
                                      f" '{SERVICE} latest'; none means the oldest",
                       "schema": {"type": "string"}, "example": f"{SERVICE} {text(MAX_VERSION)}"})
    operation["parameters"] = parameters
    if request_schema is not None:
        operation["requestBody"] = {"required": endpoint not in OPTIONAL_BODY, "content": {
            "application/json": {"schema": request_schema}}}
    responses: dict[str, Any] = {}
    answered: dict[str, Any] = {"description": "OK", "headers": dict(ANSWER_HEADERS)}
    if status == 204:
        answered["description"] = "Accepted; nothing to return"
    elif endpoint in RAW:
        answered["content"] = {RAW[endpoint]: {"schema": {"type": "string",
                                                          "format": "binary"}}}
    elif envelope is None:
        answered["content"] = {"application/json": {"schema": {"type": "object"}}}
    else:
        answered["content"] = {"application/json": {"schema": _envelope(endpoint, envelope)}}
    responses[str(status)] = answered
    responses.update(EXTRA_RESPONSES.get(endpoint, {}))
    for code, description in ERRORS.items():
        responses[str(code)] = {
            "description": description,
            "headers": {**ANSWER_HEADERS, **ERROR_HEADERS.get(code, {})},
            "content": {"application/json": {"schema": "Error"}}}
    operation["responses"] = responses
    return operation


def _envelope(endpoint: str, envelope: Envelope) -> dict[str, Any]:
    key, schema, many = envelope
    inner: Any = {"type": "array", "items": schema} if many else schema
    props: dict[str, Any] = {key: inner}
    if endpoint in PAGED:
        # only a page that is not the whole list says where the others are
        props["markers"] = s.Markers
        props["links"] = {"type": "array", "items": s.Link}
    one = {"type": "object", "properties": props, "required": [key],
           "additionalProperties": False}
    if endpoint not in MANY_CREATED:
        return one
    several = {"type": "object", "required": [MANY_CREATED[endpoint]],
               "additionalProperties": False, "properties": {MANY_CREATED[endpoint]: {
                   "type": "array", "items": one}}}
    return {"oneOf": [one, several]}


def _query_schema(endpoint: str, name: str) -> dict[str, Any]:
    if name == "limit":
        return {"type": "integer", "minimum": 1, "maximum": 1000}
    if name == "sort_by":
        fields = SORT_FIELDS[endpoint]
        return {"type": "string", "enum": [*fields, *(f"-{f}" for f in fields)]}
    if name == "show_progress":
        return {"type": "string", "enum": ["true", "false", "True", "False", "1", "0"]}
    if name == "refresh_status":
        return {"type": "string", "enum": ["true", "false", "True", "False"]}
    return {"type": "string"}


def init_app(app: Flask) -> None:
    cached: dict[str, Any] = {}

    @app.get("/v2/openapi.json")
    def openapi_document() -> Response:
        if not cached:
            cached.update(build(app))
        return jsonify(cached)
