"""``/v2/plugins`` and ``/v2/job-types``: what the installed plugins offer."""

from __future__ import annotations

from flask import Blueprint, Response

from sahara_es.api.schemas import PluginUpdate
from sahara_es.api.service import caller, service
from sahara_es.api.views.common import answer, body, no_params
from sahara_es.commands import plugins as commands
from sahara_es.commands.errors import NotVisible

blueprint = Blueprint("plugins", __name__)


@blueprint.get("/plugins")
def list_plugins() -> Response:
    no_params()
    catalog = service().catalog
    return answer("plugins", [catalog.summary(name) for name in sorted(service().plugins)])


@blueprint.get("/plugins/<name>")
def show_plugin(name: str) -> Response:
    no_params()
    catalog = service().catalog
    catalog.plugin(name)  # 404 unless it is enabled here
    return answer("plugin", catalog.summary(name))


@blueprint.get("/plugins/<name>/<version>")
def show_plugin_version(name: str, version: str) -> Response:
    no_params()
    catalog = service().catalog
    if version not in catalog.plugin(name).versions():
        raise NotVisible(f"plugin {name} has no version {version}")
    return answer("plugin", catalog.version_details(name, version))


@blueprint.patch("/plugins/<name>")
def update_plugin(name: str) -> Response:
    """Sahara's plugin update: admins set labels (``commands.plugins``); 202 with the
    plugin as it is now shown."""
    no_params()
    catalog = service().catalog
    catalog.plugin(name)
    commands.require_admin(caller())
    commands.change_labels(service().store, caller(), name, catalog.labels(name),
                           body(PluginUpdate))
    return answer("plugin", catalog.summary(name), 202)


@blueprint.get("/job-types")
def list_job_types() -> Response:
    from flask import request

    no_params("type", "plugin_name", "plugin_version")
    types = service().catalog.job_types()
    wanted = request.args.getlist("type")
    plugin = request.args.get("plugin_name")
    version = request.args.get("plugin_version")
    result = []
    for job_type in types:
        if wanted and job_type["name"] not in wanted:
            continue
        plugins = [p for p in job_type["plugins"] if plugin is None or p["name"] == plugin]
        if version is not None:
            plugins = [p for p in plugins if version in p["versions"]]
        if plugins:
            result.append({**job_type, "plugins": plugins})
    return answer("job_types", result)
