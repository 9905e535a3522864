"""Spark jobs: ``spark-submit --master <master URL> --deploy-mode client`` on the master's
node, the driver inside spark-submit, tracked by the launcher like any job process.

The main is a Python file (``.py``) or a jar with ``edp.java.main_class``; libs go to
``--py-files`` (``.py``, ``.zip``, ``.egg``) or ``--jars`` (``.jar``). Configs named
``spark.*`` are handed on through the job's properties file (never its command line) when
they are safe: a plain value, and no name that loads code, names a file, a folder, a URL or
options of another program (``spark.driver.extraJavaOptions`` only through the JVM option
checker the engine was given). The application is named ``sahara-es-<job id>``: a cancel
kills the driver's process group, then waits until the master's JSON status no longer lists
that application as active (the workers kill its executors once the driver is gone).

Object storage: an arg that is the URL of one of the job's ``swift://`` or ``s3://`` data
sources (or a path below it) is replaced by its ``s3a://`` URL, with the ``spark.hadoop.*``
settings (in the properties file: they hold the secret) and the jars that
``sahara_es.edp.storage`` gives for it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sahara_es.edp import storage
from sahara_es.edp.base import DataSourceAccess, JobEngineError, JobInvalid, JobNode, JobRun
from sahara_es.edp.java import MAIN_CLASS, check_java_options, check_main_class
from sahara_es.edp.launcher import (
    LaunchedJobEngine,
    check_args,
    check_configs,
    check_files,
    check_text,
    config_hint,
    exports,
)
from sahara_es.infra.ssh import SSHError, SSHPool, current_limits, redact

SPARK = "Spark"
APP_PREFIX = "sahara-es-"
APP_ID = re.compile(r"app-[0-9]{1,20}-[0-9]{1,10}")
PROPERTIES = "job.properties"
CONFIGS = {MAIN_CLASS, "edp.spark.adapt_for_swift"}
OBJECT_SCHEMES = ("swift://", "s3://")

STATUS_LIMIT = 4 * 1024 * 1024
STATUS_TIMEOUT = 5.0

DEFAULTS = {"spark.executor.memory": "512m"}
"""What a job gets unless its configs say otherwise (a worker offers 512m by default)."""

_NAME = re.compile(r"spark(?:\.[A-Za-z0-9_\-]+)+")
_VALUE = re.compile(r"[A-Za-z0-9_.,:+\-]{1,256}")
_JAVA_OPTIONS = {"spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"}
_DENIED = {"spark.master", "spark.app.name", "spark.submit.deployMode", "spark.jars",
           "spark.pyspark.python", "spark.pyspark.driver.python", "spark.driver.host",
           "spark.driver.bindAddress", "spark.local.dir", "spark.redaction.regex",
           "spark.files", "spark.archives", "spark.submit.pyFiles"}
_DENIED_PREFIXES = ("spark.hadoop.", "spark.executorEnv.", "spark.yarn.", "spark.kubernetes.",
                    "spark.mesos.", "spark.ui.", "spark.history.", "spark.eventLog.",
                    "spark.metrics.", "spark.authenticate", "spark.ssl.", "spark.jars.",
                    "spark.driver.extra", "spark.executor.extra", "spark.sql.hive.",
                    "spark.sql.warehouse", "spark.sql.catalog", "spark.sql.extensions",
                    "spark.sql.queryExecutionListeners", "spark.sql.streaming.",
                    "spark.worker.", "spark.master.", "spark.deploy.", "spark.api.",
                    "spark.python.", "spark.r.", "spark.archives", "spark.repl.",
                    "spark.checkpoint")
_DENIED_WORDS = ("file", "files", "path", "paths", "dir", "dirs", "directory", "home",
                 "class", "classes", "classname", "loader", "factory", "conf", "config",
                 "url", "uri", "urls", "location", "jar", "jars", "library", "agent",
                 "plugin", "plugins", "listener", "listeners", "filter", "filters",
                 "provider", "providers", "policy", "script", "command", "cmd", "options",
                 "opts", "manager", "packages", "repositories", "ivy", "serializer",
                 "codec", "executable", "python", "env", "host", "address", "user", "log")


def check_spark_conf(name: str, value: object,
                     java_opts_check: Callable[[str], object] | None = None) -> str:
    """The value a job may set for Spark config ``name``; ``JobInvalid`` otherwise."""
    text = check_text(str(value) if isinstance(value, int | float) and not isinstance(
        value, bool) else value, f"config {name}")
    if name in _JAVA_OPTIONS and java_opts_check is not None:
        check_java_options(text, java_opts_check)
        return text
    if not _NAME.fullmatch(name) or len(name) > 200:
        raise JobInvalid(f"{name!r} is not a Spark config name")
    segments = [s.lower() for s in name.split(".")[1:]]
    if (name in _DENIED or name.startswith(_DENIED_PREFIXES)
            or any(s.endswith(_DENIED_WORDS) for s in segments)):
        raise JobInvalid(f"config {name} may not be set by a job: it names files, classes,"
                         " programs or where the job runs")
    if not _VALUE.fullmatch(text):
        raise JobInvalid(f"config {name}: {text[:80]!r} is not a plain value (letters,"
                         " digits and ._,:+-)")
    return text


def _property_line(name: str, value: str) -> str:
    """A ``java.util.Properties`` line (values escaped: ``\\``, and leading spaces)."""
    escaped = value.replace("\\", "\\\\")
    if escaped.startswith(" "):
        escaped = "\\" + escaped
    if any(c in name + value for c in "\n\r\0"):
        raise JobInvalid(f"config {name} holds a newline or a NUL")
    return f"{name}={escaped}\n"


@contextlib.contextmanager
def _storage_errors(secrets: list[str]) -> Iterator[None]:
    """Storage's refusals (a URL or endpoint refused, no S3A jars here) make the job
    invalid; its retryable errors are the engine's, to try again."""
    try:
        yield
    except storage.StorageUnavailable as error:
        raise JobEngineError(f"object storage: {redact(str(error), secrets)}") from None
    except (storage.StorageRefused, storage.S3AJarsMissing) as error:
        raise JobInvalid(f"object storage: {redact(str(error), secrets)}") from None


class SparkJobEngine(LaunchedJobEngine):
    job_types = (SPARK,)

    def __init__(self, pool: SSHPool, nodes: list[JobNode], *, master_url: str,
                 spark_home: str, hdfs_url: str | None = None,
                 extra_jars: list[str] | None = None,
                 storage_policy: storage.StoragePolicy | None = None,
                 python: str | None = None, master_webui_port: int = 8080,
                 java_opts_check: Callable[[str], object] | None = None) -> None:
        super().__init__(pool, nodes)
        self.master_url = master_url
        self.spark_home = spark_home
        self.hdfs_url = hdfs_url
        self.extra_jars = list(extra_jars or [])
        self.storage_policy = (storage_policy if storage_policy is not None
                               else storage.policy_from_env())
        self.python = python or sys.executable
        self.master_webui_port = master_webui_port
        self.java_opts_check = java_opts_check

    # -- checks ---------------------------------------------------------------------------

    def validate_job_execution(self, job: JobRun) -> None:
        super().validate_job_execution(job)
        if len(job.mains) != 1:
            raise JobInvalid(f"a Spark job has exactly one main, not {len(job.mains)}")
        main = job.mains[0].name
        if main.endswith(".jar"):
            if MAIN_CLASS not in job.configs:
                raise JobInvalid(f"a Spark job whose main is a jar needs its main class"
                                 f" ({MAIN_CLASS})")
            check_main_class(job.configs[MAIN_CLASS])
        elif not main.endswith(".py"):
            raise JobInvalid(f"a Spark job's main is a Python file (.py) or a jar, not"
                             f" {main!r}")
        check_files(job)
        for lib in job.libs:
            if not lib.name.endswith((".py", ".zip", ".egg", ".jar")):
                raise JobInvalid(f"a Spark job's libs are .py, .zip, .egg or .jar files, not"
                                 f" {lib.name!r}")
        check_configs(job, CONFIGS)
        self.spark_confs(job)
        if job.params:
            raise JobInvalid("Spark jobs take no params (use args or configs)")
        check_args(job)
        self.job_node(job)

    def spark_confs(self, job: JobRun) -> dict[str, str]:
        confs = {}
        for name, value in job.configs.items():
            if name.startswith("edp."):
                continue
            confs[name] = check_spark_conf(name, value, self.java_opts_check)
        return confs

    def get_possible_job_config(self, job_type: str) -> dict[str, Any]:
        return {"configs": [config_hint(MAIN_CLASS, "The main class, when the main is a"
                                        " jar"),
                            config_hint("spark.executor.memory", "Each executor's memory",
                                        DEFAULTS["spark.executor.memory"]),
                            config_hint("spark.executor.cores", "Cores of each executor"),
                            config_hint("spark.cores.max", "Cores of the whole job")],
                "args": [], "params": None}

    def job_node(self, job: JobRun) -> JobNode:
        node = self.node_with("master")
        if node is None:
            raise JobInvalid("the cluster has no Spark master node")
        return node

    # -- the command ----------------------------------------------------------------------

    def object_storage(self, job: JobRun) -> tuple[list[str], dict[str, str], list[str]]:
        """The args with object storage URLs rewritten to s3a, the settings and jars that
        reading them takes."""
        args = check_args(job)
        sources: dict[str, DataSourceAccess] = {}
        for source in [job.input, job.output, *job.data_sources]:
            if source is not None and source.url.startswith(OBJECT_SCHEMES):
                sources.setdefault(source.url, source)
        settings: dict[str, str] = {}
        used = False
        rewritten = []
        for arg in args:
            # The source's URL itself, or a path below it (``swift://c/in/*.txt``).
            source = sources.get(arg) or next(
                (s for url, s in sources.items() if arg.startswith(url.rstrip("/") + "/")),
                None)
            if source is None:
                rewritten.append(arg)
                continue
            with _storage_errors(job.secrets()):
                url, more = storage.s3a_settings(source, self.storage_policy)
            rewritten.append(str(url).rstrip("/") + arg[len(source.url.rstrip("/")):])
            settings.update({str(k): str(v) for k, v in dict(more).items()})
            used = True
        jars: list[str] = []
        if used:
            with _storage_errors(job.secrets()):
                jars = [str(Path(jar)) for jar in storage.s3a_jars()]
        return rewritten, settings, jars

    def app_name(self, job_id: str) -> str:
        return f"{APP_PREFIX}{job_id}"

    def script(self, job: JobRun, node: JobNode) -> tuple[str, list[tuple[str, bytes]]]:
        args, storage_settings, storage_jars = self.object_storage(job)
        main = job.mains[0]
        properties = {**DEFAULTS, "spark.pyspark.python": self.python,
                      "spark.pyspark.driver.python": self.python,
                      **self.spark_confs(job), **storage_settings}
        if self.hdfs_url:
            properties["spark.hadoop.fs.defaultFS"] = self.hdfs_url
            properties["spark.hadoop.dfs.client.use.datanode.hostname"] = "true"
        py_files = [lib.name for lib in job.libs if lib.name.endswith((".py", ".zip", ".egg"))]
        jars = ([lib.name for lib in job.libs if lib.name.endswith(".jar")]
                + self.extra_jars + storage_jars)
        for jar in jars:
            if "," in jar or "\n" in jar:
                raise JobInvalid(f"a jar path holds a comma or a newline: {jar!r}")
        words = ["--master", self.master_url, "--deploy-mode", "client",
                 "--name", self.app_name(job.job_id), "--properties-file", PROPERTIES]
        if main.name.endswith(".jar"):
            words += ["--class", check_main_class(job.configs[MAIN_CLASS])]
        if py_files:
            words += ["--py-files", ",".join(py_files)]
        if jars:
            words += ["--jars", ",".join(jars)]
        words += [main.name, *args]
        env = {"SPARK_LOCAL_IP": node.ssh.address, "PYSPARK_PYTHON": self.python,
               "PYSPARK_DRIVER_PYTHON": self.python, "PYTHONUNBUFFERED": "1"}
        text = (exports(env) + f"export SPARK_HOME={self._home()}\n"
                + 'exec "$SPARK_HOME/bin/spark-submit" '
                + " ".join(shlex.quote(w) for w in words) + "\n")
        contents = "".join(_property_line(k, v) for k, v in properties.items())
        return text, [(PROPERTIES, contents.encode())]

    def _home(self) -> str:
        """The Spark distribution on the node (``$HOME/...`` or relative: the node's home)."""
        home = self.spark_home
        for prefix in ("$HOME/", "~/"):
            if home.startswith(prefix):
                return '"$HOME"/' + shlex.quote(home[len(prefix):])
        if not home.startswith("/"):
            return '"$HOME"/' + shlex.quote(home)
        return shlex.quote(home)

    # -- cancelling -----------------------------------------------------------------------

    def master_status(self, timeout: float = STATUS_TIMEOUT) -> dict[str, Any]:
        """The master's ``/json/`` document (read as untrusted: bounded, no proxy)."""
        host = urllib.parse.urlsplit(self.master_url).hostname
        master = self.node_with("master")
        address = host or (master.ssh.address if master else "")
        if ":" in address:
            address = f"[{address}]"
        url = f"http://{address}:{self.master_webui_port}/json/"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=timeout) as answer:
                status = json.loads(answer.read(STATUS_LIMIT + 1)[:STATUS_LIMIT])
        except (OSError, ValueError) as error:
            raise JobEngineError(f"the Spark master at {url} does not answer: {error}"
                                 ) from error
        if not isinstance(status, dict):
            raise JobEngineError(f"the Spark master at {url} answers no JSON object")
        return status

    def application(self, job_id: str) -> tuple[str | None, bool]:
        """The id the master gave the job's application (None before it registered) and
        whether it is still active."""
        status = self.master_status()
        name = self.app_name(job_id)
        found: tuple[str | None, bool] = (None, False)
        for key, active in (("completedapps", False), ("activeapps", True)):
            for app in status.get(key, []) or []:
                if isinstance(app, dict) and app.get("name") == name:
                    app_id = str(app.get("id", ""))
                    found = (app_id if APP_ID.fullmatch(app_id) else None, active)
        return found

    def active_application(self, job_id: str) -> bool:
        return self.application(job_id)[1]

    def executors(self, app_id: str) -> dict[str, list[int]]:
        """The worker nodes' executor processes of application ``app_id``, by node."""
        # The class name is put together by the shell, so that the shell's own command line
        # (which holds this text) never matches.
        command = (f"c=Coarse; grep -laF -- {shlex.quote(app_id)} /proc/[0-9]*/cmdline"
                   ' 2>/dev/null | xargs -r grep -laF "${c}GrainedExecutorBackend" 2>/dev/null'
                   " | cut -d/ -f3; exit 0")
        found = {}
        for node in self.nodes:
            if "worker" in node.processes:
                answer = self.pool.run(node.ssh, command, timeout=30, check=False).stdout
                pids = [int(p) for p in answer.split() if p.isdigit()]
                if pids:
                    found[node.name] = pids
        return found

    def after_kill(self, job_id: str, node: JobNode, timeout: float) -> bool:
        """The application gone from the master's active ones, and no worker node left
        running an executor of it (the workers kill them once the driver is gone)."""
        deadline = time.monotonic() + timeout
        limits = current_limits()
        while True:
            try:
                app_id, active = self.application(job_id)
                if not active and (app_id is None or not self.executors(app_id)):
                    return True
            except (JobEngineError, SSHError):
                pass  # a master or a node that does not answer: look again
            if time.monotonic() >= deadline or limits.wait(0.5):
                return False
