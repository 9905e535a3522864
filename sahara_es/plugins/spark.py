"""Apache Spark standalone: a master and workers from the Spark shipped in ``pyspark``.

Provisioning is four kinds of task, each over one node and registered by name so that any
engine rebuilds them from the history:

- ``spark.configure-node`` checks that Spark is there (``bin/spark-class``), links it as
  ``$HOME/spark/dist`` and writes ``$HOME/spark/conf/spark-env.sh``;
- ``spark.start-master`` and ``spark.start-worker`` start a daemon detached from the SSH
  session (unless it already runs) and wait until the master's JSON status shows it: the
  master answering, the worker listed ALIVE under its address;
- ``spark.decommission-worker`` drains a worker (SIGPWR, which a worker started with
  ``spark.decommission.enabled`` turns into a decommission the master records), then stops it;
- ``spark.stop-node`` stops every Spark daemon of a node (best effort).

Everything a node runs lives under its home::

    $HOME/spark/dist          -> the Spark distribution (the pyspark package folder)
    $HOME/spark/conf/         spark-env.sh (SPARK_CONF_DIR)
    $HOME/spark/work/         the worker's application folders (SPARK_WORKER_DIR)
    $HOME/spark/logs/         master.out, worker.out (what the daemons print)
    $HOME/spark/run/          master.pid, worker.pid

A node's daemons are found by their command line, which names both the daemon's class and
the node's ``$HOME/spark/``: the local provider runs every node on one machine, so a process
of the same class may belong to another node or cluster, and must not be touched.

The master's JSON status (``http://MASTER:WEBUI/json/``) is read from the engine's side: it is
the view Spark itself has of the cluster, and the nodes' addresses are reachable from there.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Callable
from importlib import metadata, util
from pathlib import Path
from typing import Any, TypeVar

from sahara_es.edp.base import JobEngine
from sahara_es.edp.java import JavaJobEngine
from sahara_es.edp.shell import ShellJobEngine
from sahara_es.edp.spark import SparkJobEngine
from sahara_es.edp.storage import StoragePolicy
from sahara_es.engine import Flow, PermanentFailure, RetryPolicy, TaskContext, task_type
from sahara_es.infra.ssh import SSHError, SSHPool, current_limits
from sahara_es.plugins import jvm
from sahara_es.plugins.base import (
    STOP_GRACE,
    ClusterInfo,
    ConfigOption,
    Health,
    HealthCheck,
    NodeInfo,
    NodeTask,
    Plugin,
    PluginInvalid,
    Topology,
    check_int_range,
    node_args,
    node_task_id,
    process_counts,
)
from sahara_es.plugins.catalog import PluginUnavailable, summary_of
from sahara_es.plugins.waits import Wait, poll, read_status_page

SERVICE = "Spark"
MASTER = "master"
WORKER = "worker"

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"

ENV_FILE = "spark/conf/spark-env.sh"
"""Relative to the node's home, where every SSH command of a node starts."""

DEFAULTS: dict[str, Any] = {
    "Master port": 7077,
    "Master webui port": 8080,
    "Worker port": 7078,
    "Worker webui port": 8081,
    "Worker cores": 1,
    "Worker memory": "512m",
    "Daemon memory": "256m",
    "Daemon Java options": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1",
    "Start timeout": 180,
    "Decommission timeout": 60,
    "Spark home": "",
}

_JSON_TIMEOUT = 5.0
_STOP_RESERVE = 3 * STOP_GRACE
"""Seconds of a decommission step kept for stopping the worker after its drain."""


PYSPARK_MISSING = ("the pyspark package is not installed where the service runs (pip install"
                   " pyspark): the Spark distribution in it is what the nodes run")


def spark_version() -> str:
    """The installed pyspark's version: the one Spark version the plugin offers.
    ``PluginUnavailable`` when pyspark is not installed: no Spark could run then, so no
    version is offered (never a made-up one)."""
    try:
        return metadata.version("pyspark")
    except metadata.PackageNotFoundError:
        raise PluginUnavailable(PYSPARK_MISSING) from None


def local_spark_home() -> str:
    """The Spark distribution of the installed pyspark (found without importing pyspark)."""
    found = util.find_spec("pyspark")
    if found is None or found.origin is None:
        return ""
    return str(Path(found.origin).parent)


# -- errors ---------------------------------------------------------------------------------


class SparkError(Exception):
    retryable: bool = False


class DaemonNotReady(SparkError):
    """A daemon runs but Spark does not show it ready in time (retryable: it may be slow)."""

    retryable = True


class DaemonDied(SparkError, PermanentFailure):
    """A daemon exited while it was awaited: the log's end says why; a retry would not help."""


class MasterUnreachable(SparkError):
    retryable = True


# -- the master's JSON status ---------------------------------------------------------------

def master_status(address: str, webui_port: int, timeout: float = _JSON_TIMEOUT
                  ) -> dict[str, Any]:
    """The master's ``/json/`` document; ``MasterUnreachable`` if it does not answer, within
    ``timeout`` seconds for the whole answer (and what the step has left), with a JSON object
    of at most ``waits.STATUS_PAGE_LIMIT`` bytes (no redirect followed). The master's node is
    the tenant's: what answers there is not trusted to be Spark."""
    url = f"http://{address}:{webui_port}/json/"
    try:
        status = json.loads(read_status_page(address, webui_port, "/json/", timeout=timeout))
    except (OSError, ValueError) as error:
        raise MasterUnreachable(f"the Spark master at {url} does not answer: {error}"
                                ) from error
    if not isinstance(status, dict):
        raise MasterUnreachable(f"the Spark master at {url} answers no JSON object")
    return status


def worker_states(status: dict[str, Any]) -> dict[str, str]:
    """Host address → the best state the master lists for it (a restarted worker leaves its
    old entry DEAD beside the new ALIVE one)."""
    rank = {"ALIVE": 3, "DECOMMISSIONED": 2, "UNKNOWN": 1, "DEAD": 0}
    states: dict[str, str] = {}
    for worker in status.get("workers", []):
        host, state = str(worker.get("host", "")), str(worker.get("state", "UNKNOWN"))
        best = states.get(host)
        if best is None or rank.get(state, 1) > rank.get(best, 1):
            states[host] = state
    return states


R = TypeVar("R")


def wait_until(check: Callable[[], R], timeout: float, what: str) -> R:
    """``check()``'s value once it stops raising ``DaemonNotReady``/``MasterUnreachable``;
    the last such error, prefixed with ``what``, after ``timeout`` seconds.

    Within a node step, never past the step's time (``waits.WaitTimedOut``, however long the
    tenant's timeout) and never once its work is cancelled (``waits.WaitStopped``)."""
    last: Exception | None = None

    def probe() -> R | None:
        nonlocal last
        try:
            return check()
        except (DaemonNotReady, MasterUnreachable) as error:
            last = error
            return None

    return poll(Wait(timeout, what), probe,
                expired=lambda: DaemonNotReady(f"{what} within {timeout:g} s: {last}"),
                detail=lambda: str(last), cause=lambda: last, pause=0.25, max_pause=2.0)


# -- commands run on a node -----------------------------------------------------------------

# The node's own processes of a class ($1): their command line names the class and the
# node's $HOME/spark/ (the launcher, then the JVM it execs). The patterns reach grep as
# arguments, so the shell running this text -- which holds "$HOME" unexpanded -- never matches.
_PIDS = ('spark_pids() { grep -laF "$HOME/spark/" /proc/[0-9]*/cmdline 2>/dev/null'
         ' | xargs -r grep -laF "$1" 2>/dev/null | cut -d/ -f3; }; ')

_STOP = _PIDS + (
    'spark_stop() { p=$(spark_pids "$1"); [ -z "$p" ] && { echo "$2 none"; return 0; };'
    ' kill -TERM $p 2>/dev/null;'
    f' for i in $(seq {int(STOP_GRACE * 4)}); do sleep 0.25;'
    ' [ -z "$(spark_pids "$1")" ] && { echo "$2 stopped"; return 0; }; done;'
    ' kill -KILL $(spark_pids "$1") 2>/dev/null; echo "$2 killed"; }; ')


def _launch_command(kind: str, cls: str, arguments: list[str]) -> str:
    """Start a daemon detached from the session, unless the node already runs it.

    ``setsid`` leaves the session's process group, ``nohup`` and the redirections its
    terminal, so that closing the channel does not end the daemon. The wrapper writes its
    own pid, which ``exec`` hands down to spark-class and then to the JVM.
    """
    quoted = " ".join(shlex.quote(a) for a in arguments)
    pid, log = f"spark/run/{kind}.pid", f"spark/logs/{kind}.out"
    return (
        _PIDS
        + f'running=$(spark_pids {cls}); if [ -n "$running" ]; then'
        f' echo "running $(echo $running)"; exit 0; fi; '
        f"mkdir -p spark/run spark/logs && rm -f {pid} && "
        'SPARK_HOME="$HOME/spark/dist" SPARK_CONF_DIR="$HOME/spark/conf" '
        f"nohup setsid sh -c 'echo $$ > \"$0\"; exec \"$@\"' {pid}"
        f' "$HOME/spark/dist/bin/spark-class" {cls} {quoted}'
        f" > {log} 2>&1 < /dev/null & "
        f"for i in $(seq 50); do [ -s {pid} ] && break; sleep 0.1; done; echo started $(cat {pid})"
    )


# -- what a tenant may configure --------------------------------------------------------------

SIZE = re.compile(r"[1-9][0-9]{0,6}[kKmMgGtT]?")
"""A memory size as Spark and the JVM read it (``512m``, ``2g``)."""

SPARK_HOMES_VARIABLE = "SAHARA_ES_SPARK_HOMES"
"""Colon-separated Spark distributions the operator lets tenants choose as ``Spark home``."""


def allowed_spark_homes() -> set[str]:
    """``Spark home`` names the program every node runs: a tenant may name only the default
    (the pyspark package) or a distribution the operator lists."""
    listed = os.environ.get(SPARK_HOMES_VARIABLE, "")
    return {home for home in [local_spark_home(), *listed.split(":")] if home}


def check_setting(name: str, value: Any) -> None:
    """``PluginInvalid`` unless ``value`` may be handed on as Spark config ``name``: the JVM
    options pass ``jvm.check_options``, sizes are sizes, ports and counts numbers."""
    if value is None:
        return
    text = str(value)
    if name == "Daemon Java options":
        try:
            jvm.check_options(text)
        except jvm.UnsafeJvmOption as unsafe:
            raise PluginInvalid(str(unsafe)) from None
    elif name in ("Worker memory", "Daemon memory"):
        if not SIZE.fullmatch(text):
            raise PluginInvalid(f"{text!r} is not a memory size such as 512m or 2g")
    elif name in ("Master port", "Master webui port", "Worker port", "Worker webui port"):
        check_int_range(value, 1024, 65535, f"{text!r} is not a port number from 1024 to 65535")
    elif name in ("Worker cores", "Start timeout", "Decommission timeout"):
        check_int_range(value, 1, 100_000, f"{text!r} is not a positive integer")
    elif name == "Spark home":
        if text and text not in allowed_spark_homes():
            raise PluginInvalid(f"{text!r} is not a Spark distribution this service offers;"
                                f" leave it empty (the operator may list others in"
                                f" {SPARK_HOMES_VARIABLE})")
    else:
        raise PluginInvalid(f"Spark has no config {name!r}; it has"
                            f" {', '.join(sorted(DEFAULTS))}")


def _settings(cluster: ClusterInfo) -> dict[str, Any]:
    return {name: cluster.config(SERVICE, name, default) for name, default in DEFAULTS.items()}


def _master(cluster: ClusterInfo) -> NodeInfo:
    masters = cluster.with_process(MASTER)
    if len(masters) != 1:
        raise PermanentFailure(f"cluster {cluster.name} has {len(masters)} Spark masters,"
                               " not one")
    return masters[0]


def spark_env(cluster: ClusterInfo, node: NodeInfo) -> str:
    """The node's spark-env.sh (sourced by spark-class with every variable exported)."""
    s = _settings(cluster)
    master = _master(cluster)
    # A port taken makes the daemon fail (and the start task say why) rather than move to
    # the next port, where neither the status checks nor open_ports() would look for it.
    fixed_ports = "-Dspark.port.maxRetries=0"
    worker_opts = (f"{fixed_ports} -Dspark.decommission.enabled=true"
                   " -Dspark.worker.decommission.signal=PWR")
    values = {
        "SPARK_LOCAL_IP": node.address,
        "SPARK_PUBLIC_DNS": node.address,
        "SPARK_MASTER_HOST": master.address,
        "SPARK_MASTER_PORT": str(s["Master port"]),
        "SPARK_MASTER_WEBUI_PORT": str(s["Master webui port"]),
        # The REST submission server is off: jobs are submitted through the master port.
        "SPARK_MASTER_OPTS": f"{fixed_ports} -Dspark.master.rest.enabled=false",
        "SPARK_WORKER_PORT": str(s["Worker port"]),
        "SPARK_WORKER_WEBUI_PORT": str(s["Worker webui port"]),
        "SPARK_WORKER_CORES": str(s["Worker cores"]),
        "SPARK_WORKER_MEMORY": str(s["Worker memory"]),
        # SIGPWR then decommissions the worker (Spark >= 3.1) instead of killing it.
        "SPARK_WORKER_OPTS": worker_opts,
        "SPARK_DAEMON_MEMORY": str(s["Daemon memory"]),
        # Small daemons on small nodes: start fast and keep few GC threads.
        "SPARK_DAEMON_JAVA_OPTS": str(s["Daemon Java options"]),
        "SPARK_LAUNCHER_OPTS": str(s["Daemon Java options"]),
    }
    for name, value in values.items():
        if any(c in value for c in "\0\n\r"):
            raise PermanentFailure(f"{name} for {node.name} holds a NUL or a newline")
    lines = [f"# Written by sahara-es for {node.name}; every configure rewrites it.",
             *(f"{name}={shlex.quote(value)}" for name, value in values.items()),
             # Expanded when the file is sourced: the node's own home.
             'SPARK_WORKER_DIR="$HOME/spark/work"',
             'SPARK_LOG_DIR="$HOME/spark/logs"',
             'SPARK_PID_DIR="$HOME/spark/run"',
             # The cluster's HDFS (hdfs.py), when it has a namenode.
             *hdfs.spark_env_lines(cluster), ""]
    return "\n".join(lines)


# -- tasks ----------------------------------------------------------------------------------


class _NodeTask(NodeTask):
    """A task over ``args["node"]`` of ``args["cluster"]``, with the node's Spark logs and
    daemons at hand."""

    def log_tail(self, pool: SSHPool, kind: str) -> str:
        try:
            result = pool.run(self.node.ssh_node(), f"tail -c 2000 spark/logs/{kind}.out",
                              check=False, timeout=30)
        except SSHError as error:
            return f"(log unreadable: {error})"
        return result.stdout.strip()

    def running(self, pool: SSHPool, cls: str) -> list[int]:
        result = pool.run(self.node.ssh_node(), _PIDS + f"spark_pids {cls}", timeout=60)
        return [int(pid) for pid in result.stdout.split()]


@task_type("spark.configure-node")
class ConfigureNode(_NodeTask):
    """Check the Spark distribution, link it into the node's home, write spark-env.sh."""

    idempotent = True
    retry = RetryPolicy(attempts=3, backoff=1.0)

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        node, pool = self.node, self.pool(ctx)
        home = shlex.quote(self.args["spark_home"])
        ctx.check_lease()
        checked = pool.run(
            node.ssh_node(),
            f"test -x {home}/bin/spark-class || exit 3; "
            "mkdir -p spark/conf spark/work spark/logs spark/run && "
            f"ln -sfn {home} spark/dist", check=False, timeout=60)
        if checked.exit_code == 3:
            raise PermanentFailure(f"no Spark on {node.name}: {self.args['spark_home']}"
                                   "/bin/spark-class is missing")
        if checked.exit_code != 0:
            raise SparkError(f"preparing {node.name} failed ({checked.exit_code}):"
                             f" {checked.stderr.strip()[-500:]}")
        pool.put_file(node.ssh_node(), ENV_FILE, spark_env(self.cluster, node), 0o644)
        return {"node": node.name, "spark_home": self.args["spark_home"], "env": ENV_FILE}


class _StartDaemon(_NodeTask):
    kind: str
    cls: str
    idempotent = True
    retry = RetryPolicy(attempts=2, backoff=2.0)

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> dict[str, Any]:
        """What the master's JSON shows of this daemon; ``DaemonNotReady`` until it is up."""
        raise NotImplementedError

    def launch_command(self) -> str:
        """The shell text that starts the daemon detached, unless the node runs it (the
        HDFS daemons, which are no spark-class programs, start otherwise)."""
        return _launch_command(self.kind, self.cls, self.arguments())

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        node, pool = self.node, self.pool(ctx)
        ctx.check_lease()
        launched = pool.run(node.ssh_node(), self.launch_command(), timeout=60)
        already = launched.stdout.startswith("running")
        pids = [int(p) for p in launched.stdout.split()[1:] if p.isdigit()]

        def check() -> dict[str, Any]:
            try:
                return self.ready()
            except (DaemonNotReady, MasterUnreachable):
                if not self.running(pool, self.cls):
                    raise DaemonDied(f"Spark {self.kind} on {node.name} exited before it was"
                                     f" ready; its log ends with:\n{self.log_tail(pool, self.kind)}"
                                     ) from None
                raise

        timeout = float(_settings(self.cluster)["Start timeout"])
        try:
            shown = wait_until(check, timeout, f"Spark {self.kind} on {node.name} not ready")
        except DaemonNotReady as error:
            raise DaemonNotReady(f"{error}; its log ends with:\n"
                                 f"{self.log_tail(pool, self.kind)}") from error
        return {"node": node.name, "pids": pids, "already_running": already, **shown}

    def reconcile(self, ctx: TaskContext, intent: dict[str, Any]) -> dict[str, Any] | None:
        """Started if the node runs the daemon and the master shows it ready."""
        pids = self.running(self.pool(ctx), self.cls)
        if not pids:
            return None
        try:
            shown = self.ready()
        except (DaemonNotReady, MasterUnreachable):
            return None
        return {"node": self.node.name, "pids": pids, "already_running": True, **shown}


@task_type("spark.start-master")
class StartMaster(_StartDaemon):
    kind = MASTER
    cls = MASTER_CLASS

    def arguments(self) -> list[str]:
        s = _settings(self.cluster)
        return ["--host", self.node.address, "--port", str(s["Master port"]),
                "--webui-port", str(s["Master webui port"])]

    def ready(self) -> dict[str, Any]:
        status = master_status(self.node.address, int(_settings(self.cluster)["Master webui port"]))
        if status.get("status") != "ALIVE":
            raise DaemonNotReady(f"the master is {status.get('status')}")
        return {"url": status.get("url"), "status": status.get("status")}


@task_type("spark.start-worker")
class StartWorker(_StartDaemon):
    kind = WORKER
    cls = WORKER_CLASS

    def arguments(self) -> list[str]:
        s = _settings(self.cluster)
        master = _master(self.cluster)
        return ["--host", self.node.address, "--port", str(s["Worker port"]),
                "--cores", str(s["Worker cores"]), "--memory", str(s["Worker memory"]),
                "--webui-port", str(s["Worker webui port"]),
                f"spark://{master.address}:{s['Master port']}"]

    def ready(self) -> dict[str, Any]:
        master = _master(self.cluster)
        status = master_status(master.address, int(_settings(self.cluster)["Master webui port"]))
        state = worker_states(status).get(self.node.address)
        if state != "ALIVE":
            raise DaemonNotReady(f"the master lists {self.node.address} as {state or 'absent'}")
        return {"master": master.name, "state": state}


@task_type("spark.decommission-worker")
class DecommissionWorker(_NodeTask):
    """Drain a worker, then stop it: SIGPWR makes the worker tell the master it is
    decommissioning (the master stops giving it executors and marks it DECOMMISSIONED);
    once the master no longer lists it ALIVE, the process is stopped. A worker that does not
    drain within the timeout is stopped anyway, and the result says so."""

    idempotent = True
    retry = RetryPolicy(attempts=2, backoff=2.0)

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        node, pool, cluster = self.node, self.pool(ctx), self.cluster
        settings = _settings(cluster)
        master = _master(cluster)
        webui = int(settings["Master webui port"])
        timeout = float(self.args.get("timeout", settings["Decommission timeout"]))
        # Draining ends early enough for the stop to fit in what the step has left.
        step_left = current_limits().remaining()
        if step_left is not None:
            timeout = min(timeout, max(0.0, step_left - _STOP_RESERVE))

        def state() -> str | None:
            return worker_states(master_status(master.address, webui)).get(node.address)

        ctx.check_lease()
        started = time.monotonic()
        signalled = pool.run(
            node.ssh_node(),
            _PIDS + f'p=$(spark_pids {WORKER_CLASS});'
            ' if [ -n "$p" ]; then kill -PWR $p && echo signalled; else echo absent; fi',
            timeout=60)
        drained, note = False, ""
        if signalled.stdout.strip() == "signalled":

            def gone() -> str:
                current = state()
                if current == "ALIVE":
                    raise DaemonNotReady(f"the master still lists {node.address} ALIVE")
                return current or "absent"

            try:
                final = wait_until(gone, timeout, f"Spark worker on {node.name} not drained")
                drained, note = True, f"the master lists it {final}"
            except DaemonNotReady as error:
                note = f"{error}; stopped without draining"
        else:
            note = "no worker process was running"
        stopped = pool.run(node.ssh_node(), _STOP + f"spark_stop {WORKER_CLASS} worker",
                           timeout=STOP_GRACE + 60)
        return {"node": node.name, "drained": drained, "note": note,
                "stop": stopped.stdout.strip(),
                "seconds": round(time.monotonic() - started, 1)}


@task_type("spark.stop-node")
class StopNode(_NodeTask):
    """Stop every Spark daemon of a node: best effort, a node already gone is not an error."""

    idempotent = True
    retry = RetryPolicy(attempts=2, backoff=1.0)

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        node = self.node
        ctx.check_lease()
        try:
            result = self.pool(ctx).run(
                node.ssh_node(),
                _STOP + f"spark_stop {WORKER_CLASS} worker; spark_stop {MASTER_CLASS} master",
                timeout=2 * STOP_GRACE + 60)
        except SSHError as error:
            return {"node": node.name, "stopped": False, "error": str(error)}
        return {"node": node.name, "stopped": True, "daemons": result.stdout.split("\n")[:-1]}


# -- the plugin -----------------------------------------------------------------------------

# HDFS's tasks build on this module's (so hdfs imports it): imported once those are defined,
# and here, so that importing the plugin registers them too.
from sahara_es.plugins import hdfs  # noqa: E402


class SparkPlugin(Plugin):
    name = "spark"
    title = "Apache Spark"
    description = ("Spark standalone clusters: one master, workers; from the Spark"
                   " distribution in the pyspark package.")

    def unavailable(self) -> str | None:
        """Why the plugin cannot run here (pyspark is missing), or None when it can."""
        try:
            spark_version()
        except PluginUnavailable as missing:
            return str(missing)
        return None

    def versions(self) -> list[str]:
        try:
            return [spark_version()]
        except PluginUnavailable:
            return []

    def summary(self) -> dict[str, Any]:
        return summary_of(self, super().summary())

    def node_processes(self, version: str) -> dict[str, list[str]]:
        return {"Spark": ["master", "worker"], hdfs.SERVICE: list(hdfs.PROCESSES)}

    def topology(self, version: str) -> Topology:
        return Topology({"master": (1, 1), "worker": (1, None),
                         hdfs.NAMENODE: (0, 1), hdfs.DATANODE: (0, None)})

    def _validate_topology(self, version: str, node_groups: list[dict[str, Any]]) -> None:
        super()._validate_topology(version, node_groups)
        hdfs.check_topology(process_counts(node_groups))

    def configs(self, version: str) -> list[ConfigOption]:
        return [
            ConfigOption("Master port", "Spark", 7077, "int", description="Spark master port"),
            ConfigOption("Master webui port", "Spark", 8080, "int",
                         description="Spark master web UI and JSON status port"),
            ConfigOption("Worker cores", "Spark", 1, "int", scope="node",
                         description="Cores each worker offers"),
            ConfigOption("Worker memory", "Spark", "512m", scope="node",
                         description="Memory each worker offers"),
            ConfigOption("Worker port", "Spark", DEFAULTS["Worker port"], "int",
                         description="Port of each worker's RPC endpoint"),
            ConfigOption("Worker webui port", "Spark", DEFAULTS["Worker webui port"], "int",
                         description="Port of each worker's web UI"),
            ConfigOption("Daemon memory", "Spark", DEFAULTS["Daemon memory"],
                         description="Heap of the master and worker daemons"
                                     " (SPARK_DAEMON_MEMORY)"),
            ConfigOption("Daemon Java options", "Spark", DEFAULTS["Daemon Java options"],
                         description="JVM options of the daemons and of spark-class's"
                                     " launcher"),
            ConfigOption("Start timeout", "Spark", DEFAULTS["Start timeout"], "int",
                         description="Seconds a daemon has to show up in the master's"
                                     " status; never more than the service's step time"
                                     " limit (the step fails when that runs out)"),
            ConfigOption("Decommission timeout", "Spark", DEFAULTS["Decommission timeout"],
                         "int", description="Seconds a worker has to drain before it is"
                                            " stopped anyway; never more than the"
                                            " service's step time limit allows"),
            ConfigOption("Spark home", "Spark", "", description="The Spark distribution on"
                         " the nodes (default: the engine's pyspark package folder)"),
            *hdfs.config_options(),
        ]

    def edp_job_types(self, version: str) -> list[str]:
        return ["Spark", "Java", "Shell"]

    def get_edp_engine(self, cluster: ClusterInfo, job_type: str, ssh: SSHPool, *,
                       storage_policy: StoragePolicy | None = None) -> JobEngine | None:
        """``Spark``: ``spark-submit`` in client deploy mode on the master's node, against
        the cluster's master (and its HDFS when it has one); ``Java`` and ``Shell``: on the
        master's node."""
        master = _master(cluster)
        nodes = [master.job_node()] + [n.job_node() for n in cluster.nodes if n != master]
        if job_type == "Spark":
            s = _settings(cluster)
            return SparkJobEngine(
                ssh, nodes, master_url=f"spark://{master.address}:{s['Master port']}",
                spark_home="$HOME/spark/dist", hdfs_url=hdfs.namenode_url(cluster),
                storage_policy=storage_policy, master_webui_port=int(s["Master webui port"]),
                java_opts_check=jvm.check_options)
        if job_type == "Java":
            return JavaJobEngine(ssh, nodes, java_opts_check=jvm.check_options)
        if job_type == "Shell":
            return ShellJobEngine(ssh, nodes)
        return None

    # -- provisioning ---------------------------------------------------------------------

    def check_config(self, version: str, target: str, name: str, value: Any) -> None:
        super().check_config(version, target, name, value)
        if target == SERVICE:
            check_setting(name, value)
        elif target == hdfs.SERVICE:
            hdfs.check_setting(name, value)

    def _configure(self, flow: Flow, cluster: ClusterInfo, nodes: list[NodeInfo]) -> None:
        # Checked again here, for clusters whose configs were accepted before the API did.
        self.recheck_configs(cluster)
        home = str(cluster.config(SERVICE, "Spark home", "") or local_spark_home())
        if not home:
            raise PermanentFailure("no Spark distribution: install pyspark or set the"
                                   " 'Spark home' cluster config")
        for node in nodes:
            flow.add(node_task_id("configure", node),
                     ConfigureNode({**node_args(cluster, node), "spark_home": home}))

    def configure(self, cluster: ClusterInfo) -> Flow:
        flow = Flow()
        self._configure(flow, cluster, cluster.nodes)
        hdfs.add_configure(flow, cluster, cluster.nodes)
        return flow

    def start(self, cluster: ClusterInfo) -> Flow:
        self.recheck_configs(cluster)
        flow = Flow()
        # HDFS first: the NameNode, its DataNodes, then every datanode live (hdfs-ready).
        hdfs.add_start(flow, cluster)
        master = flow.add("start-master", StartMaster(node_args(cluster, _master(cluster))))
        for node in cluster.with_process(WORKER):
            flow.add(node_task_id("start-worker", node),
                     StartWorker(node_args(cluster, node)), requires=[master])
        return flow

    def scale(self, cluster: ClusterInfo, added: list[NodeInfo]) -> Flow:
        flow = Flow()
        workers = [node for node in added if WORKER in node.processes]
        self._configure(flow, cluster, workers)
        for node in workers:
            flow.add(node_task_id("start-worker", node), StartWorker(node_args(cluster, node)),
                     requires=[node_task_id("configure", node)])
        hdfs.add_scale(flow, cluster, added)
        return flow

    def decommission(self, cluster: ClusterInfo, removed: list[NodeInfo]) -> Flow:
        flow = Flow()
        for node in removed:
            if WORKER in node.processes:
                flow.add(node_task_id("decommission", node),
                         DecommissionWorker(node_args(cluster, node)))
        hdfs.add_decommission(flow, cluster, removed)
        return flow

    def on_terminate(self, cluster: ClusterInfo) -> Flow:
        flow = Flow()
        for node in cluster.nodes:
            flow.add(node_task_id("stop", node), StopNode(node_args(cluster, node)))
        hdfs.add_stop(flow, cluster)
        return flow

    def health(self, cluster: ClusterInfo, ssh: SSHPool) -> Health:
        master = _master(cluster)
        workers = cluster.with_process(WORKER)
        try:
            status = master_status(master.address,
                                   int(_settings(cluster)["Master webui port"]))
        except MasterUnreachable as error:
            return Health("RED", [HealthCheck("Spark master", "RED", str(error))],
                          [master.name])
        if status.get("status") != "ALIVE":
            return Health("RED", [HealthCheck("Spark master", "RED",
                                              f"the master is {status.get('status')}")],
                          [master.name])
        states = worker_states(status)
        failed = [n for n in workers if states.get(n.address) != "ALIVE"]
        alive = len(workers) - len(failed)
        checks = [HealthCheck("Spark master", "GREEN", f"{status.get('url')} is ALIVE")]
        if not failed:
            verdict = "GREEN"
            description = f"all {alive} workers are ALIVE"
        else:
            verdict = "YELLOW" if alive else "RED"
            description = f"{alive} of {len(workers)} workers ALIVE; not: " + ", ".join(
                f"{n.name} ({states.get(n.address, 'absent')})" for n in failed)
        checks.append(HealthCheck("Spark workers", verdict, description))
        failed_names = [n.name for n in failed]
        hdfs_checks, hdfs_failed = hdfs.health_checks(cluster)
        worst = ["GREEN", "YELLOW", "RED"]
        verdict = max([verdict, *(c.status for c in hdfs_checks)], key=worst.index)
        checks += hdfs_checks
        failed_names += [name for name in hdfs_failed if name not in failed_names]
        return Health(verdict, checks, failed_names)

    def cluster_urls(self, cluster: ClusterInfo) -> dict[str, dict[str, str]]:
        """The master's web UI (Sahara's ``Web UI``) and URL; HDFS's when it has one."""
        master, s = _master(cluster), _settings(cluster)
        return {SERVICE: {"Web UI": f"http://{master.address}:{s['Master webui port']}",
                          "Master URL": f"spark://{master.address}:{s['Master port']}"},
                **hdfs.cluster_urls(cluster)}

    def open_ports(self, node: NodeInfo, version: str) -> list[int]:
        ports: list[int] = []
        if MASTER in node.processes:
            ports += [DEFAULTS["Master port"], DEFAULTS["Master webui port"]]
        if WORKER in node.processes:
            ports += [DEFAULTS["Worker port"], DEFAULTS["Worker webui port"]]
        return ports + hdfs.open_ports(node)
