"""``/v2/plugins`` and ``/v2/job-types``: what the installed plugins offer."""

from __future__ import annotations

from flask import Blueprint, Response

from sahara_es.api.schemas import PluginUpdate
from sahara_es.api.service import caller, service
from sahara_es.api.views.common import answer, body, no_params
from sahara_es.commands.errors import Forbidden, Invalid, NotVisible

blueprint = Blueprint("plugins", __name__)


@blueprint.get("/plugins")
def list_plugins() -> Response:
    no_params()
    return answer("plugins", [p.summary() for _, p in sorted(service().plugins.items())])


@blueprint.get("/plugins/<name>")
def show_plugin(name: str) -> Response:
    no_params()
    return answer("plugin", service().catalog.plugin(name).summary())


@blueprint.get("/plugins/<name>/<version>")
def show_plugin_version(name: str, version: str) -> Response:
    no_params()
    plugin = service().catalog.plugin(name)
    if version not in plugin.versions():
        raise NotVisible(f"plugin {name} has no version {version}")
    return answer("plugin", plugin.version_details(version))


@blueprint.patch("/plugins/<name>")
def update_plugin(name: str) -> Response:
    no_params()
    plugin = service().catalog.plugin(name)
    if not caller().is_admin:
        raise Forbidden("only an admin changes plugin labels")
    changes = body(PluginUpdate)
    labels = plugin.labels()
    for label in changes.get("plugin_labels", {}):
        if label not in labels or not labels[label].get("mutable"):
            raise Invalid(f"plugin label {label!r} cannot be changed")
    raise Invalid("plugin labels are fixed by configuration in this release;"
                  " enable or disable plugins with the `plugins` setting")


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
