"""``/v2/data-sources``, ``/v2/job-binaries``, ``/v2/job-templates`` and ``/v2/jobs``."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app

from sahara_es.api import schemas
from sahara_es.api.pagination import page
from sahara_es.api.service import caller, service, shown
from sahara_es.api.views import bodies
from sahara_es.api.views.common import answer, body, location, no_content, no_params
from sahara_es.commands import edp, resources, secrets
from sahara_es.commands.errors import Invalid, NotVisible
from sahara_es.edp.storage import binary_file
from sahara_es.edp.storage import project_folder_name as project_folder_name
from sahara_es.events.resources import Doc, Kind

blueprint = Blueprint("edp", __name__)

DS, JB, JT, JOB = Kind.DATA_SOURCE, Kind.JOB_BINARY, Kind.JOB_TEMPLATE, Kind.JOB
SECRET_FIELDS = ("credentials", "extra")
"""Never shown: data source credentials and job binary access keys."""


def without_secrets(doc: Doc) -> Doc:
    return {k: v for k, v in shown(doc).items() if k not in SECRET_FIELDS}


def data_source_view(doc: Doc) -> Doc:
    """A data source with all of Sahara's keys, its credentials left out."""
    return bodies.data_source(without_secrets(doc))


def job_binary_view(doc: Doc) -> Doc:
    """A job binary with all of Sahara's keys, its access keys left out."""
    return bodies.job_binary(without_secrets(doc))


# -- data sources ---------------------------------------------------------------------------

@blueprint.post("/data-sources")
def create_data_source() -> Response:
    no_params()
    fields = body(schemas.DataSourceCreate)
    doc = secrets.create_with_secrets(service().store, DS, caller(), fields)
    return answer("data_source", data_source_view(service().written(doc)), 202)


@blueprint.get("/data-sources")
def list_data_sources() -> Response:
    docs = (data_source_view(d) for d in service().visible(DS, caller()))
    return answer(None, page(docs, envelope="data_sources", filters=("type", "name"),
                             sort_fields=("id", "name", "type", "created_at", "updated_at")))


@blueprint.get("/data-sources/<resource_id>")
def show_data_source(resource_id: str) -> Response:
    no_params()
    return answer("data_source", data_source_view(service().get(DS, resource_id, caller())))


@blueprint.patch("/data-sources/<resource_id>")
@blueprint.put("/data-sources/<resource_id>")
def update_data_source(resource_id: str) -> Response:
    no_params()
    doc = secrets.update_with_secrets(service().store, DS, resource_id, caller(),
                                      body(schemas.DataSourceUpdate))
    return answer("data_source", data_source_view(service().written(doc)), 202)


@blueprint.delete("/data-sources/<resource_id>")
def delete_data_source(resource_id: str) -> Response:
    no_params()
    secrets.delete_with_secrets(service().store, DS, resource_id, caller())
    service().refresh(DS, resource_id)
    return no_content()


# -- job binaries ---------------------------------------------------------------------------

@blueprint.post("/job-binaries")
def create_job_binary() -> Response:
    no_params()
    doc = secrets.create_with_secrets(service().store, JB, caller(),
                                      body(schemas.JobBinaryCreate))
    return answer("job_binary", job_binary_view(service().written(doc)), 202)


@blueprint.get("/job-binaries")
def list_job_binaries() -> Response:
    docs = (job_binary_view(d) for d in service().visible(JB, caller()))
    return answer(None, page(docs, envelope="binaries", filters=("name",),
                             sort_fields=("id", "name", "created_at", "updated_at")))


@blueprint.get("/job-binaries/<resource_id>")
def show_job_binary(resource_id: str) -> Response:
    no_params()
    return answer("job_binary", job_binary_view(service().get(JB, resource_id, caller())))


@blueprint.get("/job-binaries/<resource_id>/data")
def job_binary_data(resource_id: str) -> Response:
    """The binary's bytes, for ``file://`` binaries in their project's job binary folder."""
    no_params()
    doc = service().get(JB, resource_id, caller())
    url: str = doc["url"]
    if not url.startswith("file://"):
        raise Invalid(f"job binary {resource_id} is at {url.split('://')[0]}://; this"
                      " deployment serves the data of file:// binaries only")
    path = binary_file(Path(current_app.config["JOB_BINARY_ROOT"]), doc["project_id"],
                       url[len("file://"):])
    try:
        if path is not None:
            return Response(path.read_bytes(), 200, mimetype="application/octet-stream")
    except (OSError, ValueError):  # gone meanwhile, unreadable: as missing
        pass
    # the server's folders are nobody's business: say what is missing, not where
    raise NotVisible(f"job binary {resource_id}: its data is missing from its project's job"
                     " binary folder")


@blueprint.patch("/job-binaries/<resource_id>")
@blueprint.put("/job-binaries/<resource_id>")
def update_job_binary(resource_id: str) -> Response:
    no_params()
    doc = secrets.update_with_secrets(service().store, JB, resource_id, caller(),
                                      body(schemas.JobBinaryUpdate))
    return answer("job_binary", job_binary_view(service().written(doc)), 202)


@blueprint.delete("/job-binaries/<resource_id>")
def delete_job_binary(resource_id: str) -> Response:
    no_params()
    secrets.delete_with_secrets(service().store, JB, resource_id, caller())
    service().refresh(JB, resource_id)
    return no_content()


# -- job templates --------------------------------------------------------------------------

def template_view(doc: Doc) -> Doc:
    """Mains and libs as the job binaries they name (Sahara shows the objects)."""
    view = shown(doc)
    for key in ("mains", "libs"):
        view[key] = [_binary(i) for i in doc.get(key, [])]
    return bodies.job_template(view)


def _binary(binary_id: str) -> Doc:
    """The binary, if the caller may see it (a public job template may use its owner's
    private binaries: others see only their ids)."""
    found = service().reads[JB].get(binary_id)
    if found is None or not caller().can_see(found):
        return {"id": binary_id}
    return job_binary_view(found)


@blueprint.post("/job-templates")
def create_job_template() -> Response:
    no_params()
    doc = edp.create_job_template(service().store, caller(), service().catalog,
                                  body(schemas.JobTemplateCreate))
    return answer("job_template", template_view(service().written(doc)), 202)


@blueprint.get("/job-templates")
def list_job_templates() -> Response:
    docs = (template_view(d) for d in service().visible(JT, caller()))
    return answer(None, page(docs, envelope="job_templates", filters=("type", "name"),
                             sort_fields=("id", "name", "type", "created_at", "updated_at")))


@blueprint.get("/job-templates/<resource_id>")
def show_job_template(resource_id: str) -> Response:
    no_params()
    return answer("job_template", template_view(service().get(JT, resource_id, caller())))


@blueprint.get("/job-templates/config-hints/<job_type>")
def job_config_hints(job_type: str) -> Response:
    no_params("plugin_name", "plugin_version")
    service().catalog.check_job_type(job_type)
    return answer("job_config", config_hints(job_type))


@blueprint.patch("/job-templates/<resource_id>")
@blueprint.put("/job-templates/<resource_id>")
def update_job_template(resource_id: str) -> Response:
    no_params()
    doc = resources.update(service().store, JT, resource_id, caller(),
                           body(schemas.JobTemplateUpdate))
    return answer("job_template", template_view(service().written(doc)), 202)


@blueprint.delete("/job-templates/<resource_id>")
def delete_job_template(resource_id: str) -> Response:
    no_params()
    resources.delete(service().store, JT, resource_id, caller())
    service().refresh(JT, resource_id)
    return no_content()


def config_hints(job_type: str) -> Doc:
    """What a job of the type can be given (Sahara's hints per type)."""
    takes_params = job_type in ("Pig", "Hive", "Shell")
    takes_args = job_type not in ("Hive", "MapReduce", "MapReduce.Streaming")
    configs = [{"name": "edp.java.main_class", "value": "",
                "description": "The class with main()"}] if job_type in ("Java", "Spark") \
        else []
    return {"configs": configs, "args": [] if takes_args else None,
            "params": {} if takes_params else None}


# -- jobs (executions) ----------------------------------------------------------------------

@blueprint.post("/jobs")
def run_job() -> Response:
    no_params()
    doc = edp.run_job(service().store, caller(), service().catalog, body(schemas.JobCreate))
    service().job_created(doc)
    service().written(doc)  # the engines' handoff starts its workflow (edp.manager)
    return answer("job", job_view(doc), 202, location=location(f"jobs/{doc['id']}"))


@blueprint.get("/jobs")
def list_jobs() -> Response:
    docs = (job_view(d) for d in service().visible(JOB, caller()))
    return answer(None, page(docs, envelope="jobs", filters=("status", "cluster_id"),
                             sort_fields=("id", "job_template_id", "cluster_id", "status",
                                          "created_at", "updated_at")))


@blueprint.get("/jobs/<resource_id>")
def show_job(resource_id: str) -> Response:
    no_params("refresh_status")
    return answer("job", job_view(service().get(JOB, resource_id, caller())))


@blueprint.get("/jobs/<resource_id>/logs")
def job_logs(resource_id: str) -> Response:
    """A sahara-es extension: the last bytes of the job's stdout and stderr, as its job
    engine last read them (while it runs, every few seconds; and when it ended)."""
    no_params()
    doc = service().get(JOB, resource_id, caller())
    logs = doc.get("logs") or {}
    return answer("logs", {"job_id": doc["id"], "status": doc["info"]["status"],
                           "stdout": logs.get("stdout", ""), "stderr": logs.get("stderr", ""),
                           "captured_at": logs.get("captured_at")})


@blueprint.patch("/jobs/<resource_id>")
def update_job(resource_id: str) -> Response:
    no_params()
    fields = body(schemas.JobUpdate)
    cancelling = "info" in fields
    doc = edp.update_job(service().store, caller(), resource_id, fields)
    service().written(doc)
    if cancelling:
        if not service().engines:  # nothing runs the job: it is killed at once
            edp.kill_unstarted(service().store, doc["id"], caller())
        service().refresh(JOB, resource_id)
        fresh = service().reads[JOB].get(resource_id)
        return answer("job", job_view(fresh or doc), 202,
                      location=location(f"jobs/{resource_id}"))
    return answer("job", job_view(doc), 202)


def job_view(doc: Doc) -> Doc:
    """A job as Sahara shows it (its captured output is read through ``/logs``), a secret
    of its configs shown as ``******``."""
    view = {k: v for k, v in shown(doc).items() if k != "logs"}
    job_configs = view.get("job_configs")
    if isinstance(job_configs, dict) and isinstance(job_configs.get("configs"), dict):
        view["job_configs"] = {**job_configs, "configs": {
            name: "******" if secrets.is_sealed(value) else value
            for name, value in job_configs["configs"].items()}}
    return bodies.job(view)


@blueprint.delete("/jobs/<resource_id>")
def delete_job(resource_id: str) -> Response:
    no_params()
    edp.delete_job(service().store, caller(), resource_id)
    service().refresh(JOB, resource_id)
    return no_content()
