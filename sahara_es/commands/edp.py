"""EDP commands: data sources, job binaries, job templates and jobs (executions).

A job template pins its job binaries; a job pins its template and data sources while it
exists. Running a job needs an Active cluster the caller may see; the job engines of the EDP
layer carry it out and record its status in the job's stream.
"""

from __future__ import annotations

import re
import secrets
import string

from sahara_es.commands import resources
from sahara_es.commands import secrets as job_secrets
from sahara_es.commands.caller import Caller
from sahara_es.commands.catalog import Catalog
from sahara_es.commands.errors import Conflict, Invalid, NotVisible
from sahara_es.events import resources as ev
from sahara_es.events.resources import JOB_FINAL, Doc, Kind
from sahara_es.events.statuses import JobStatus
from sahara_es.store import Store

DATA_SOURCE = Kind.DATA_SOURCE
JOB_BINARY = Kind.JOB_BINARY
JOB_TEMPLATE = Kind.JOB_TEMPLATE
JOB = Kind.JOB

INITIAL_JOB_STATUS: str = JobStatus.PENDING.value


ONE_MAIN = ("Pig", "Hive", "Spark", "Shell", "Storm", "Storm.Pyleus", "Dask")
LIBS_ONLY = ("Java", "MapReduce")


def check_binaries(job_type: str, mains: list[str], libs: list[str]) -> None:
    """Sahara's rules on a job template's binaries, per job type."""
    if job_type in ONE_MAIN and len(mains) != 1:
        raise Invalid(f"a {job_type} job template needs exactly one main job binary"
                      f" (it has {len(mains)})")
    if job_type in LIBS_ONLY:
        if mains:
            raise Invalid(f"a {job_type} job template takes no mains: give its jar in libs")
        if not libs:
            raise Invalid(f"a {job_type} job template needs libs (the jar to run)")
    if job_type == "MapReduce.Streaming" and (mains or libs):
        raise Invalid("a MapReduce.Streaming job template takes no mains or libs")


def create_job_template(store: Store, caller: Caller, catalog: Catalog, fields: Doc) -> Doc:
    catalog.check_job_type(fields["type"])
    mains, libs = list(fields.get("mains", [])), list(fields.get("libs", []))
    check_binaries(fields["type"], mains, libs)
    interface = fields.get("interface") or []
    names = [argument["name"] for argument in interface]
    if len(set(names)) != len(names):
        raise Invalid("interface: argument names must be unique")
    for argument in interface:
        if argument["mapping_type"] == "args" and not str(argument["location"]).isdigit():
            raise Invalid(f"interface argument {argument['name']!r}: an args location is"
                          " the argument's position (0, 1, ...)")
    uses = [(JOB_BINARY, binary) for binary in dict.fromkeys([*mains, *libs])]
    return resources.create(store, JOB_TEMPLATE, caller, fields, uses=uses)


_RANDSTR = re.compile(r"%RANDSTR\((\d+)\)%")


def resolve_placeholders(url: str, job_id: str) -> str:
    """A data source URL with ``%JOB_EXEC_ID%`` and ``%RANDSTR(n)%`` resolved (once: the
    job keeps the result in ``data_source_urls``)."""
    def random_text(match: re.Match[str]) -> str:
        length = int(match.group(1))
        if not 1 <= length <= 1024:
            raise Invalid(f"%RANDSTR({length})%: a length from 1 to 1024")
        return "".join(secrets.choice(string.ascii_lowercase) for _ in range(length))

    return _RANDSTR.sub(random_text, url.replace("%JOB_EXEC_ID%", job_id))


def apply_interface(template: Doc, given: Doc, job_configs: Doc) -> Doc:
    """``job_configs`` with the job's interface values mapped where the template's interface
    says (configs, params or args); Sahara's checks: no unknown argument, every required one
    given (or defaulted), numbers as numbers, no clash with what job_configs sets."""
    interface = {a["name"]: a for a in template.get("interface") or []}
    unknown = sorted(set(given) - set(interface))
    if unknown:
        raise Invalid(f"interface: the job template has no argument {', '.join(unknown)}")
    configs = dict(job_configs.get("configs") or {})
    params = dict(job_configs.get("params") or {})
    args = [str(a) for a in job_configs.get("args") or []]
    positional: dict[int, str] = {}
    for name, argument in interface.items():
        value = given.get(name, argument.get("default"))
        if value is None:
            if argument.get("required"):
                raise Invalid(f"interface: the required argument {name!r} is missing")
            continue
        value = str(value)
        if argument.get("value_type") == "number":
            try:
                float(value)
            except ValueError:
                raise Invalid(f"interface: argument {name!r} must be a number") from None
        location = str(argument["location"])
        where = {"configs": configs, "params": params}.get(argument["mapping_type"])
        if where is not None:
            if location in where:
                raise Invalid(f"interface: argument {name!r} sets {argument['mapping_type']}"
                              f" {location!r}, which job_configs sets too")
            where[location] = value
        else:
            positional[int(location)] = value
    if positional:
        if args:
            raise Invalid("interface: a job whose template maps arguments to args gives no"
                          " args of its own")
        if sorted(positional) != list(range(len(positional))):
            raise Invalid("interface: the args positions must run from 0 without a gap")
        args = [positional[i] for i in range(len(positional))]
    result = {**job_configs, "configs": configs, "params": params, "args": args}
    return {k: v for k, v in result.items() if v or k in ("configs", "params", "args")}


def check_job_configs(job_configs: Doc) -> None:
    for name, value in (job_configs.get("configs") or {}).items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise Invalid(f"job_configs.configs {name!r}: a value must be a string, a number"
                          " or a boolean")
    for name, value in (job_configs.get("params") or {}).items():
        if not isinstance(value, str | int | float):
            raise Invalid(f"job_configs.params {name!r}: a value must be a string or a"
                          " number")


MAIN_CLASS = "edp.java.main_class"


def check_main_class(store: Store, template: Doc, job_configs: Doc) -> None:
    """Sahara's rule: a Java job, and a Spark job whose main is a jar, name their main class
    (``edp.java.main_class``)."""
    if (job_configs.get("configs") or {}).get(MAIN_CLASS):
        return
    if template["type"] == "Java":
        raise Invalid(f"a Java job needs its main class: set {MAIN_CLASS} in job_configs"
                      " configs")
    if template["type"] == "Spark":
        mains = [resources.load(store, JOB_BINARY, i).doc for i in template.get("mains") or []]
        if any(m is not None and str(m.get("url", "")).endswith(".jar") for m in mains):
            raise Invalid(f"a Spark job whose main is a jar needs its main class: set"
                          f" {MAIN_CLASS} in job_configs configs")


def _flag(configs: Doc, name: str) -> bool:
    return str(configs.get(name, "")).lower() in ("true", "1", "yes")


def run_job(store: Store, caller: Caller, catalog: Catalog, fields: Doc) -> Doc:
    """Record a job to run; the job manager (``edp.manager``) runs it once its cluster is
    Active, on the job engine of the cluster's plugin."""
    template = resources.referenced(store, JOB_TEMPLATE, fields["job_template_id"],
                                    caller).doc
    cluster = resources.referenced(store, Kind.CLUSTER, fields["cluster_id"], caller).doc
    assert template is not None and cluster is not None
    if cluster["status"] in ("Error", "Deleting"):
        raise Conflict(f"cluster {cluster['id']} is {cluster['status']}; jobs run on a cluster"
                       " that is or becomes Active")
    catalog.check_plugin(cluster["plugin_name"], cluster["plugin_version"])
    catalog.check_job_type(template["type"], cluster["plugin_name"], cluster["plugin_version"])
    job_configs = dict(fields.get("job_configs") or {})
    check_job_configs(job_configs)
    job_configs = apply_interface(template, dict(fields.get("interface") or {}), job_configs)
    check_main_class(store, template, job_configs)
    job_id = resources.new_id()
    sources: dict[str, Doc] = {}
    for key in ("input_id", "output_id"):
        if fields.get(key):
            found = resources.referenced(store, DATA_SOURCE, fields[key], caller).doc
            assert found is not None
            sources[found["id"]] = found
    configs = job_configs.get("configs") or {}
    by_name, by_id = _flag(configs, "edp.substitute_data_source_for_name"), \
        _flag(configs, "edp.substitute_data_source_for_uuid")
    args = list(job_configs.get("args") or [])
    if by_name or by_id:
        for index, arg in enumerate(args):
            found = _data_source_named(store, caller, arg, by_name=by_name, by_id=by_id)
            if found is not None:
                sources[found["id"]] = found
                args[index] = f"{DATA_SOURCE_ARG}{found['id']}"
    urls = {source_id: resolve_placeholders(doc["url"], job_id)
            for source_id, doc in sources.items()}
    if fields.get("input_id") and fields.get("input_id") == fields.get("output_id"):
        raise Invalid("the job's input and output are the same data source")
    if fields.get("input_id") and fields.get("output_id") \
            and urls[fields["input_id"]] == urls[fields["output_id"]]:
        raise Invalid("the job's input and output data sources reference the same location")
    job_configs["args"] = [urls[a[len(DATA_SOURCE_ARG):]] if a.startswith(DATA_SOURCE_ARG)
                           else a for a in args]
    uses = [(JOB_TEMPLATE, template["id"])] + [(DATA_SOURCE, i) for i in sources]
    try:
        job_configs["configs"] = job_secrets.seal_job_configs(store, job_id, configs)
        attributes = {**fields, "job_configs": job_configs, "data_source_urls": urls,
                      "info": {"status": INITIAL_JOB_STATUS}, "start_time": None,
                      "end_time": None, "engine_job_id": None, "return_code": None}
        return resources.create(store, JOB, caller, attributes, uses=uses,
                                resource_id=job_id)
    except BaseException:
        job_secrets.SecretBox(store).shred(JOB.stream(job_id))
        raise


DATA_SOURCE_ARG = "\0data-source:"


def _data_source_named(store: Store, caller: Caller, arg: str, *, by_name: bool,
                       by_id: bool) -> Doc | None:
    """The data source an argument names (by id or by name, as the job's configs allow)."""
    if by_id:
        try:
            found = resources.visible(store, DATA_SOURCE, arg, caller).doc
            if found is not None:
                return found
        except NotVisible:
            pass
    if by_name and NAME_LIKE.fullmatch(arg):
        owner = store.name_owner(caller.project_id, DATA_SOURCE.value, arg)
        if owner is not None:
            return resources.referenced(store, DATA_SOURCE, owner, caller).doc
    return None


NAME_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


@resources.rereads_on_conflict
def cancel_job(store: Store, caller: Caller, job_id: str) -> Doc:
    """Ask for the job to be killed (``TOBEKILLED``); a finished job cannot be."""
    aggregate = resources.owned(store, JOB, job_id, caller)
    doc = aggregate.doc
    assert doc is not None
    status = doc["info"]["status"]
    if status in JOB_FINAL:
        raise Conflict(f"job {job_id} is {status} already")
    if status == JobStatus.TOBEKILLED:
        return doc
    return resources.append(store, aggregate, [ev.JobCancelRequested(status)], caller)


@resources.rereads_on_conflict
def update_job(store: Store, caller: Caller, job_id: str, changes: Doc) -> Doc:
    changes = dict(changes)
    info = changes.pop("info", None)
    doc = resources.update(store, JOB, job_id, caller, changes) if changes else \
        resources.owned(store, JOB, job_id, caller).doc
    if info is not None:
        if str(info.get("status", "")).lower() != "cancel":
            raise Invalid('info: only {"status": "cancel"} is accepted')
        doc = cancel_job(store, caller, job_id)
    assert doc is not None
    return doc


@resources.rereads_on_conflict
def delete_job(store: Store, caller: Caller, job_id: str) -> None:
    """Delete a job record; a job still running is asked to stop first."""
    aggregate = resources.owned(store, JOB, job_id, caller)
    doc = aggregate.doc
    assert doc is not None
    if doc.get("is_protected"):
        resources.check_changeable(store, aggregate, caller=caller)
    if doc["info"]["status"] not in JOB_FINAL | {"TOBEKILLED"}:
        resources.append(store, aggregate, [ev.JobCancelRequested(doc["info"]["status"])],
                         caller)
    resources.finish_delete(store, aggregate, caller)
    job_secrets.SecretBox(store).shred(JOB.stream(job_id))


@resources.rereads_on_conflict
def kill_unstarted(store: Store, job_id: str, caller: Caller) -> None:
    """A cancelled job no job engine ever started is killed at once."""
    aggregate = resources.load(store, JOB, job_id)
    if aggregate.exists and aggregate.doc is not None \
            and aggregate.doc["info"]["status"] == "TOBEKILLED":
        resources.append(store, aggregate, [ev.JobStatusChanged(JobStatus.KILLED.value)], caller)
