"""The service processes' configuration (``sahara-es api``, ``engine``, ``all-in-one``): every
option declared once, here, with oslo.config, and read from a file in the OpenStack way.

Where a value comes from, strongest first: the command line's flag, then the option's
``SAHARA_ES_*`` environment variable, then the configuration files (``--config-file``,
repeatable, else oslo's default locations such as ``/etc/sahara-es/sahara-es.conf``; then
``--config-dir``), then the default. Flags are made from the options (``flag``), so a flag's
help and type are its option's. ``list_opts`` lists them for ``oslo-config-generator``
(``etc/oslo-config-generator/sahara-es.conf``; the sample is ``etc/sahara-es.conf.sample``).
keystonemiddleware registers its own ``[keystone_authtoken]`` options on the same
configuration when the API runs in keystone mode; oslo.messaging its own (``[DEFAULT]
transport_url``, ``[oslo_messaging_rabbit]``, ``[oslo_messaging_notifications]``...) when a
process joins the bus (``messaging_options``), and ``$SAHARA_ES_TRANSPORT_URL`` sets
``transport_url`` (doc/bus.rst).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import click
from click.core import ParameterSource
from oslo_config import cfg, types

from sahara_es.api.app import DEFAULT_PORT
from sahara_es.api.auth import MODES
from sahara_es.api.limits import MAX_BODY_BYTES, MAX_CONFIG_BYTES, MAX_JSON_DEPTH
from sahara_es.api.reads import DEFAULT_AFFINITY_WINDOW
from sahara_es.edp.manager import JobLimits
from sahara_es.engine import EngineConfig
from sahara_es.projections.memory import DEFAULT_MAX_LAG
from sahara_es.provisioning.services import StepLimits
from sahara_es.rpc.settings import (
    BusSettings,
    NotificationSettings,
    register_messaging_options,
)

PROJECT = "sahara-es"

ENVIRONMENT: dict[tuple[str, str], str] = {}
"""``(group, option) -> environment variable`` for the options one can set from the
environment."""


def _group(name: str, *opts: tuple[cfg.Opt, str | None]) -> list[cfg.Opt]:
    """The options of one group, each with the environment variable that may set it."""
    for opt, variable in opts:
        if variable:
            ENVIRONMENT[(name, opt.dest)] = variable
            opt.help = f"{opt.help} Environment: ${variable}."
    return [opt for opt, _ in opts]


DEFAULT_OPTS = _group(
    "DEFAULT",
    (cfg.StrOpt("data_dir", sample_default="$XDG_DATA_HOME/sahara-es",
                help="The service's state folder: the default store is its store.db, and"
                     " file:// job binaries live in its job-binaries/<project>/. Default:"
                     " $XDG_DATA_HOME/sahara-es (~/.local/share/sahara-es)."),
     "SAHARA_ES_DATA_DIR"),
    (cfg.BoolOpt("enable_notifications", default=False,
                 help="Send Sahara's cluster notifications (sahara.cluster.create, update,"
                      " delete) through oslo.messaging's Notifier, from the engines, on"
                      " [oslo_messaging_notifications]'s transport (default: transport_url)"
                      " and topics."),
     "SAHARA_ES_NOTIFICATIONS"),
    (cfg.StrOpt("notification_level", default=NotificationSettings.level,
                choices=["DEBUG", "INFO", "WARN", "ERROR", "CRITICAL"],
                help="The priority of the cluster notifications."), None),
    (cfg.StrOpt("notification_publisher_id", sample_default="sahara.<host>",
                help="The publisher_id of the cluster notifications (default: sahara.<the"
                     " engine's host name>)."), None),
)

DATABASE_OPTS = _group(
    "database",
    (cfg.StrOpt("connection",
                help="The store's URL: sqlite:///PATH or"
                     " cassandra://HOST[,HOST]:PORT/KEYSPACE?... (doc/store.rst; never a"
                     " password: see cassandra_credentials_file). Default: SQLite, store.db"
                     " in the state folder."),
     "SAHARA_ES_STORE"),
    (cfg.StrOpt("cassandra_credentials_file",
                help="A file (mode 0600) with Cassandra's user name and password, for"
                     " Cassandra URLs that name no password_file."),
     "SAHARA_ES_CASSANDRA_CREDENTIALS"),
)

API_OPTS = _group(
    "api",
    (cfg.HostAddressOpt("host", default="127.0.0.1", help="The address the API listens on."),
     "SAHARA_ES_API_HOST"),
    (cfg.PortOpt("port", default=DEFAULT_PORT, help="The port the API listens on."),
     "SAHARA_ES_API_PORT"),
    (cfg.IntOpt("workers", default=1, min=1,
                help="API worker processes: more than one serves the API with gunicorn."),
     "SAHARA_ES_API_WORKERS"),
    (cfg.StrOpt("auth_strategy", default="token", choices=MODES,
                help="How callers are identified: token (sahara-es token create), keystone"
                     " (keystonemiddleware, configured in [keystone_authtoken]) or noauth"
                     " (development only)."),
     "SAHARA_ES_AUTH"),
    (cfg.ListOpt("plugins",
                 help="Plugins to enable (default: every installed one but fake, which must"
                      " be named to be enabled)."),
     "SAHARA_ES_PLUGINS"),
    (cfg.BoolOpt("run_projector", default=True,
                 help="Keep the read models up to date from this process (one process at a"
                      " time does, by lease); false leaves them to another process."),
     "SAHARA_ES_PROJECTOR"),
    (cfg.StrOpt("reads", default="memory", choices=["memory", "store"],
                help="Where GETs read: this process's read models in memory, fed by the feed,"
                     " or the stored read models (doc/api-processes.rst)."),
     "SAHARA_ES_API_READS"),
    (cfg.FloatOpt("max_read_lag", default=DEFAULT_MAX_LAG, min=0.1,
                  help="Seconds the in-memory reads may go without reaching the feed's end"
                       " before GETs read the store instead."),
     "SAHARA_ES_API_MAX_READ_LAG"),
    (cfg.FloatOpt("affinity_window", default=DEFAULT_AFFINITY_WINDOW, min=0.0,
                  help="A caller this process has not answered for this long may come from"
                       " another process: its request waits for the feed's end first."),
     "SAHARA_ES_API_AFFINITY_WINDOW"),
    (cfg.IntOpt("max_body_bytes", default=MAX_BODY_BYTES, min=1,
                help="A larger request body is refused with 413 before it is read."),
     "SAHARA_ES_MAX_BODY_BYTES"),
    (cfg.IntOpt("max_json_depth", default=MAX_JSON_DEPTH, min=1,
                help="Arrays and objects nested deeper in a body are refused with 400."),
     "SAHARA_ES_MAX_JSON_DEPTH"),
    (cfg.IntOpt("max_config_bytes", default=MAX_CONFIG_BYTES, min=1,
                help="Each free-form config (node_configs, job_configs...), serialized, at"
                     " most this size (400 otherwise)."),
     "SAHARA_ES_MAX_CONFIG_BYTES"),
)

ENGINE_OPTS = _group(
    "engine",
    (cfg.StrOpt("id", default="", help="This engine's id (default: a fresh one)."),
     "SAHARA_ES_ENGINE_ID"),
    (cfg.StrOpt("region", help="The region this engine serves."), "SAHARA_ES_REGION"),
    (cfg.FloatOpt("region_takeover_grace", default=EngineConfig.region_takeover_grace,
                  min=0.0,
                  help="Seconds after a workflow's lease expired before an engine of another"
                       " region takes it over, once its home region has no live engine."),
     None),
    (cfg.IntOpt("concurrency", default=EngineConfig.concurrency, min=1,
                help="Tasks run at once, over all workflows."), None),
    (cfg.IntOpt("max_workflows", default=EngineConfig.max_workflows, min=1,
                help="Workflows one engine owns at once."), None),
    (cfg.FloatOpt("project_share", default=EngineConfig.project_share, min=0.0, max=1.0,
                  help="The part of the slots and workflows one project may hold (1.0 for an"
                       " engine that serves one project; more than 0)."), None),
    (cfg.IntOpt("reclaim_slots", default=EngineConfig.reclaim_slots, min=0,
                help="Slots beyond concurrency that only deletes and rollbacks use."), None),
    (cfg.FloatOpt("lease_ttl", default=EngineConfig.lease_ttl, min=0.0,
                  help="Seconds before another engine may take this one's workflows."), None),
    (cfg.FloatOpt("sweep_interval", default=EngineConfig.sweep_interval, min=0.0,
                  help="Seconds between two looks for work in the store."), None),
    (cfg.FloatOpt("offer_delay", default=EngineConfig.offer_delay, min=0.0,
                  help="Seconds after taking a workflow before offering its ready tasks to"
                       " other engines (room announced just before is mostly taken by the"
                       " workflows that arrive with it)."), None),
    (cfg.FloatOpt("grace", default=30.0, min=0.0,
                  help="On SIGTERM, seconds to let running tasks finish before handing"
                       " back."), None),
    (cfg.IntOpt("nice", default=10,
                help="Scheduling niceness: engines do batch work and yield the CPU to API"
                     " processes on the same machine (0 to compete equally)."), None),
    (cfg.StrOpt("provider", default="local",
                help="The infrastructure provider clusters are built on."), None),
    (cfg.StrOpt("nodes_dir", sample_default="/var/lib/sahara-es/nodes",
                help="Where local instances live (default: /var/lib/sahara-es/nodes); every"
                     " folder above it must be traversable by other users."),
     "SAHARA_ES_NODES_DIR"),
    (cfg.BoolOpt("node_network_isolation", default=True,
                 help="Firewall each cluster's local nodes off from other clusters' nodes"
                      " (iptables; the local provider refuses to create nodes without it)."
                      " Off only where tenants trust each other."),
     "SAHARA_ES_NODE_NETWORK_ISOLATION"),
    (cfg.StrOpt("hosts",
                help="The hypervisors local instances are placed on: COUNT hosts of 8 vCPUs"
                     " and 16 GB, or NAME=VCPUS:RAM_MB,... (default: 3 of 8 vCPUs, 16 GB)."),
     None),
    (cfg.ListOpt("load", default=[],
                 help="Modules to import, which register task and workflow types."), None),
    (cfg.FloatOpt("step_timeout", default=StepLimits.default, min=0.0,
                  help="Seconds a node step may run when neither step_timeouts nor its task"
                       " type says otherwise; a cluster's configs never lengthen it."), None),
    (cfg.Opt("step_timeouts", type=types.Dict(types.Float(min=0.0)), default={},
                 help="Node step types' own timeouts, TYPE:SECONDS,... (e.g."
                      " spark.start-worker:300)."), None),
    (cfg.FloatOpt("step_timeout_max", default=StepLimits.maximum, min=0.0,
                  help="No node step runs longer, whatever else says so."), None),
    (cfg.FloatOpt("cancel_grace", default=StepLimits.cancel_grace, min=0.0,
                  help="Seconds a delete waits for the create or scale it cancels to roll"
                       " back before it deletes the instances anyway."), None),
)

BUS_OPTS = _group(
    "bus",
    (cfg.StrOpt("engine_topic", default=BusSettings.topic,
                help="The engines' topic on the bus ([DEFAULT] transport_url): wake-ups, task"
                     " offers, claims and cancels are cast there."), None),
    (cfg.FloatOpt("sweep_interval", default=EngineConfig.sweep_interval_with_bus, min=0.0,
                  help="With a bus, seconds between two looks for work in the store (and"
                       " between two reads of offers' claim streams): only the backstop for"
                       " a lost wake-up. Without one, [engine] sweep_interval applies."),
     None),
    (cfg.IntOpt("cast_retry", default=BusSettings.retry, min=0,
                help="Reconnections a wake-up tries before it is dropped (the sweep then"
                     " finds the work)."), None),
)

EDP_OPTS = _group(
    "edp",
    (cfg.FloatOpt("job_poll_interval", default=JobLimits.poll_interval, min=0.05,
                  help="Seconds between two looks at a running job."), None),
    (cfg.FloatOpt("job_cancel_timeout", default=JobLimits.cancel_timeout, min=1.0,
                  help="Seconds a job's cancel may take before it is reported as not"
                       " done."), None),
    (cfg.URIOpt("swift_auth_url", schemes=["http", "https"],
                help="Swift's auth URL (tempauth v1.0, http://HOST:PORT/auth/v1.0), where"
                     " every swift:// URL lives; unset: swift:// is refused."),
     "SAHARA_ES_SWIFT_AUTH_URL"),
    (cfg.URIOpt("s3_endpoint", schemes=["http", "https"],
                help="The S3 endpoint used when a job binary or data source names none."),
     "SAHARA_ES_S3_ENDPOINT"),
    (cfg.ListOpt("storage_private_hosts", default=[],
                 help="HOST or HOST:PORT that may resolve to loopback, link-local or private"
                      " addresses (a local Swift); every other such host is refused."),
     "SAHARA_ES_STORAGE_PRIVATE_HOSTS"),
    (cfg.StrOpt("job_binary_root",
                help="file:// job binaries only inside <job_binary_root>/<project folder>/"
                     " (default: the state folder's job-binaries/)."),
     "SAHARA_ES_JOB_BINARY_ROOT"),
)

GROUPS: dict[str, list[cfg.Opt]] = {
    "DEFAULT": DEFAULT_OPTS, "database": DATABASE_OPTS, "api": API_OPTS,
    "engine": ENGINE_OPTS, "bus": BUS_OPTS, "edp": EDP_OPTS,
}

TRANSPORT_URL_ENV = "SAHARA_ES_TRANSPORT_URL"
"""Sets oslo.messaging's ``[DEFAULT] transport_url`` (which oslo.messaging declares)."""


def messaging_options(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Register oslo.messaging's options on ``conf`` (only when asked: importing
    oslo.messaging takes a while and every command would pay for it)."""
    register_messaging_options(conf)
    return conf


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The ``oslo.config.opts`` entry point: sahara-es's own options, by group."""
    return [(group, list(opts)) for group, opts in GROUPS.items()]


CONFIG_FILES_ENV = "SAHARA_ES_CONFIG_FILES"
CONFIG_DIRS_ENV = "SAHARA_ES_CONFIG_DIRS"
"""The ``--config-file`` / ``--config-dir`` a process was given, for its WSGI workers
(``cli/wsgi.py``), separated by ``os.pathsep``."""


class ConfigError(click.UsageError):
    """A configuration file or environment variable says something the options refuse."""


def load(config_files: Sequence[str] = (), config_dirs: Sequence[str] = (),
         environ: Mapping[str, str] | None = None) -> cfg.ConfigOpts:
    """The configuration from ``config_files`` (else oslo's default locations for
    ``sahara-es``) and ``config_dirs``, then the environment's ``SAHARA_ES_*`` variables over
    it. Flags go over both afterwards (``apply_flags``)."""
    conf = cfg.ConfigOpts()
    for group, opts in GROUPS.items():
        conf.register_opts(opts, group=None if group == "DEFAULT" else group)
    args = [arg for path in config_files for arg in ("--config-file", path)]
    args += [arg for path in config_dirs for arg in ("--config-dir", path)]
    try:
        conf(args, project=PROJECT, prog=PROJECT, use_env=False,
             validate_default_values=True)
    except (cfg.Error, ValueError) as error:
        raise ConfigError(f"configuration: {error}") from None
    environ = os.environ if environ is None else environ
    if environ.get(TRANSPORT_URL_ENV, ""):
        messaging_options(conf).set_override("transport_url", environ[TRANSPORT_URL_ENV])
    for (group, name), variable in ENVIRONMENT.items():
        if environ.get(variable, "") != "":
            try:
                conf.set_override(name, environ[variable], None if group == "DEFAULT"
                                  else group)
            except ValueError as error:
                raise ConfigError(f"${variable}: {error}") from None
    for group, opts in GROUPS.items():  # oslo reads values when asked: ask now, once
        for opt in opts:
            try:
                conf[opt.dest] if group == "DEFAULT" else conf[group][opt.dest]
            except (cfg.Error, ValueError) as error:
                raise ConfigError(f"configuration: [{group}] {opt.dest}: {error}") from None
    return conf


def load_for_workers(environ: Mapping[str, str] | None = None) -> cfg.ConfigOpts:
    """The configuration of a process started by another (gunicorn's workers): the files and
    folders named by ``SAHARA_ES_CONFIG_FILES`` / ``SAHARA_ES_CONFIG_DIRS``, then the
    environment."""
    environ = os.environ if environ is None else environ
    files = [p for p in environ.get(CONFIG_FILES_ENV, "").split(os.pathsep) if p]
    dirs = [p for p in environ.get(CONFIG_DIRS_ENV, "").split(os.pathsep) if p]
    return load(files, dirs, environ)


class SettingOption(click.Option):
    """A flag that stands for a configuration option: given, it overrides it."""

    def __init__(self, *args: Any, setting: tuple[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setting = setting


F = TypeVar("F", bound=Callable[..., Any])


def _opt(group: str, name: str) -> cfg.Opt:
    for opt in GROUPS[group]:
        if opt.dest == name:
            return opt
    raise KeyError(f"no option {name} in [{group}]")


def _click_type(opt: cfg.Opt) -> Any:
    kind = opt.type
    if isinstance(kind, types.Integer):
        return click.IntRange(kind.min, kind.max) if kind.min is not None or \
            kind.max is not None else int
    if isinstance(kind, types.Float):
        return click.FloatRange(kind.min, kind.max)
    if isinstance(kind, types.String) and kind.choices:
        return click.Choice(list(kind.choices))
    return str


def flag(group: str, name: str, *decls: str, **kwargs: Any) -> Callable[[F], F]:
    """The command-line flag of ``[group] name``: ``--name`` (dashes for underscores), with
    its option's help, type and default; given, it overrides the option (``apply_flags``).
    ``decls`` and ``kwargs`` change what the flag is called or takes."""
    opt = _opt(group, name)
    dashed = name.replace("_", "-")
    if isinstance(opt.type, types.Boolean):
        decls = decls or (f"--{dashed}/--no-{dashed}",)
    else:
        decls = decls or (f"--{dashed}",)
        kwargs.setdefault("type", _click_type(opt))
    variable = ENVIRONMENT.get((group, name))
    help_text = (opt.help or "").replace(f" Environment: ${variable}.", "")
    where = f"[{group}] {name}" + (f", ${variable}" if variable else "")
    kwargs.setdefault("help", f"{help_text} (config: {where})")
    if opt.default not in (None, "", [], {}) and not kwargs.get("multiple"):
        # shown in --help only: a flag overrides its option when given (apply_flags)
        kwargs.setdefault("default", opt.default)
        kwargs.setdefault("show_default", True)
    return click.option(*decls, cls=SettingOption, setting=(group, name), **kwargs)


def apply_flags(ctx: click.Context, conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Put the flags given on ``ctx``'s command line over ``conf``."""
    for param in ctx.command.params:
        if isinstance(param, SettingOption) and param.name and \
                ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            group, name = param.setting
            value = ctx.params[param.name]
            if isinstance(value, tuple):
                value = list(value)
            conf.set_override(name, value, None if group == "DEFAULT" else group)
    return conf


def store_url(conf: cfg.ConfigOpts) -> str | None:
    """``[database] connection``, with ``cassandra_credentials_file`` as the password file of
    a Cassandra URL that names none."""
    url: str | None = conf.database.connection
    credentials = conf.database.cassandra_credentials_file
    if url and credentials and url.startswith("cassandra://") and \
            "password_file" not in parse_qs(urlsplit(url).query):
        url += ("&" if urlsplit(url).query else "?") + f"password_file={credentials}"
    return url


def environment_of(conf: cfg.ConfigOpts, groups: Sequence[str]) -> dict[str, str]:
    """The options of ``groups`` that have an environment variable, as that environment:
    what a child process (gunicorn's workers) is given to see this process's settings."""
    found: dict[str, str] = {}
    for (group, name), variable in ENVIRONMENT.items():
        if group not in groups:
            continue
        value = conf[name] if group == "DEFAULT" else conf[group][name]
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        found[variable] = str(value)
    return found
