"""Dask distributed: one scheduler and workers (``dask scheduler`` / ``dask worker``).

Every node gets a folder ``$HOME/dask`` at configure time: ``config.json`` (the command line
of each Dask process the node runs, computed here from the cluster's configs) and ``ctl.py``,
a small control script that the node's own interpreter runs to start, stop, list and retire
processes. The processes are started detached (their own session, output to
``dask/<role>.log``) and are known by their working directory and module, so that starting
twice finds the running one and stopping finds strays a lost pid file would hide.

The engine side only talks HTTP to the scheduler's dashboard port (``/api/v1/get_workers``
lists the connected workers by name and address; the scheduler is started with that route
on, because ``/json/identity.json`` fails with a 500 whenever a worker reports metrics keyed
by tuples, as during data transfers): the engine needs no ``distributed`` of its own, and a
version mismatch between it and the nodes cannot matter. Draining runs ``Client.retire_workers`` on
the scheduler node, through ``ctl.py retire``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from sahara_es.edp.base import JobEngine
from sahara_es.edp.dask import DaskJobEngine
from sahara_es.edp.shell import ShellJobEngine
from sahara_es.edp.storage import StoragePolicy
from sahara_es.engine import Flow, PermanentFailure, RetryPolicy, Task, TaskContext, task_type
from sahara_es.infra.ssh import SSHError, SSHPool
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
    plugin_services,
)
from sahara_es.plugins.catalog import PluginUnavailable, summary_of
from sahara_es.plugins.waits import Wait, pause, poll, read_status_page

LOG = logging.getLogger(__name__)

SCHEDULER = "scheduler"
WORKER = "worker"
ROLES = (SCHEDULER, WORKER)
FOLDER = "dask"
"""The node's Dask folder, relative to the home its SSH sessions start in."""
START_TIMEOUT = 60.0
RETIRE_TIMEOUT = 120.0


DISTRIBUTED_MISSING = ("the distributed package is not installed where the service runs"
                       " (pip install distributed): the nodes run Dask from it")


def dask_version() -> str:
    """The installed distributed's version: the one Dask version the plugin offers.
    ``PluginUnavailable`` when distributed is not installed: no Dask could run then, so no
    version is offered (never a made-up one)."""
    try:
        return metadata.version("distributed")
    except metadata.PackageNotFoundError:
        raise PluginUnavailable(DISTRIBUTED_MISSING) from None


class DaskFailed(Exception):
    """A Dask process did not come up or go away as asked (retryable: ports, slow nodes)."""

    retryable = True


# -- what a node runs -------------------------------------------------------------------------


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# -- what a tenant may configure --------------------------------------------------------------

MEMORY = re.compile(r"auto|0|0?\.[0-9]+|[1-9][0-9]{0,12}(\.[0-9]+)?\s?([kKMGTP]i?)?[bB]?")
"""What ``dask worker --memory-limit`` reads: ``auto``, a fraction, bytes, ``512MB``, ``2GiB``."""

PYTHONS_VARIABLE = "SAHARA_ES_DASK_PYTHONS"
"""Colon-separated interpreters the operator lets tenants choose as ``Python``."""

SETTINGS = ("Scheduler port", "Dashboard port", "Worker threads", "Worker memory", "Python")


def allowed_pythons() -> set[str]:
    """``Python`` is the program every node runs: a tenant may name only the default (the
    service's own interpreter) or one the operator lists."""
    listed = os.environ.get(PYTHONS_VARIABLE, "")
    return {python for python in [sys.executable, *listed.split(":")] if python}


def check_setting(name: str, value: Any) -> None:
    """``PluginInvalid`` unless ``value`` may be handed on as Dask config ``name`` (into the
    processes' command lines)."""
    if value is None:
        return
    text = str(value)
    if name in ("Scheduler port", "Dashboard port"):
        check_int_range(value, 1024, 65535, f"{text!r} is not a port number from 1024 to 65535")
    elif name == "Worker threads":
        check_int_range(value, 1, 1024, f"{text!r} is not a number of threads from 1 to 1024")
    elif name == "Worker memory":
        if not MEMORY.fullmatch(text):
            raise PluginInvalid(f"{text!r} is not a memory limit such as 512MB, 2GiB or auto")
    elif name == "Python":
        if text not in allowed_pythons():
            raise PluginInvalid(f"{text!r} is not an interpreter this service offers; leave"
                                f" it out (the operator may list others in"
                                f" {PYTHONS_VARIABLE})")
    else:
        raise PluginInvalid(f"Dask has no config {name!r}; it has {', '.join(SETTINGS)}")


def _settings(cluster: ClusterInfo) -> dict[str, Any]:
    schedulers = cluster.with_process(SCHEDULER)
    if len(schedulers) != 1:
        raise PermanentFailure(f"a Dask cluster needs exactly one scheduler, {cluster.name}"
                               f" has {len(schedulers)}")
    return {
        "scheduler": schedulers[0],
        "port": int(cluster.config("Dask", "Scheduler port", 8786)),
        "dashboard": int(cluster.config("Dask", "Dashboard port", 8787)),
        "threads": int(cluster.config("Dask", "Worker threads", 1)),
        "memory": str(cluster.config("Dask", "Worker memory", "512MB")),
        "python": str(cluster.config("Dask", "Python", sys.executable)),
    }


HTTP_ROUTES = [
    "distributed.http.scheduler.prometheus", "distributed.http.scheduler.info",
    "distributed.http.scheduler.json", "distributed.http.health", "distributed.http.proxy",
    "distributed.http.statics",
    "distributed.http.scheduler.api",  # not on by default: /api/v1/get_workers
]


def node_config(cluster: ClusterInfo, node: NodeInfo) -> dict[str, Any]:
    """``dask/config.json`` of ``node``: the interpreter, each of its processes' argv and the
    environment they start with."""
    s = _settings(cluster)
    scheduler = f"tcp://{_hostport(s['scheduler'].address, s['port'])}"
    argv: dict[str, list[str]] = {}
    if SCHEDULER in node.processes:
        argv[SCHEDULER] = [s["python"], "-m", "distributed.cli.dask_scheduler",
                           "--host", node.address, "--port", str(s["port"]),
                           "--dashboard-address", _hostport(node.address, s["dashboard"])]
    if WORKER in node.processes:
        # No nanny: a worker that dies stays dead, so that health sees it and the process
        # to stop is the one this script started.
        argv[WORKER] = [s["python"], "-m", "distributed.cli.dask_worker", scheduler,
                        "--host", node.address, "--nthreads", str(s["threads"]),
                        "--name", node.name, "--memory-limit", s["memory"], "--no-nanny",
                        "--no-dashboard", "--local-directory", "space"]
    # Dask reads its configuration from DASK_* variables (values as Python literals).
    env = {"DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES": repr(HTTP_ROUTES)}
    return {"cluster": cluster.name, "node": node.name, "python": s["python"],
            "scheduler_address": scheduler, "argv": argv, "env": env}


CTL = r'''"""This node's Dask processes (written by sahara-es): start, stop, status, retire."""
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROLES = ("scheduler", "worker")


def config():
    with open(os.path.join(HERE, "config.json")) as f:
        return json.load(f)


def ours(pid, role):
    """A live process of ours: started in this folder, running the role's module."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                return False
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
        return (("distributed.cli.dask_" + role).encode() in argv
                and os.readlink("/proc/%d/cwd" % pid) == HERE)
    except (OSError, IndexError):
        return False


def running(role):
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and ours(int(p), role))


def start(role):
    pids = running(role)
    if pids:
        return {"role": role, "pid": pids[0], "started": False}
    settings = config()
    argv = settings["argv"][role]
    env = dict(os.environ, **settings.get("env", {}))
    log = os.path.join(HERE, role + ".log")
    if os.path.exists(log):
        os.replace(log, log + ".1")
    with open(log, "ab") as out:
        child = subprocess.Popen(argv, cwd=HERE, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True, env=env)
    with open(os.path.join(HERE, role + ".pid"), "w") as f:
        f.write("%d\n" % child.pid)
    return {"role": role, "pid": child.pid, "started": True}


def stop(roles, grace):
    pids = [p for role in roles for p in running(role)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(ours(p, r) for r in roles for p in pids):
        time.sleep(0.1)
    killed = [p for role in roles for p in running(role)]
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(running(r) for r in roles):
        time.sleep(0.1)
    left = [p for role in roles for p in running(role)]
    for role in roles:
        try:
            os.remove(os.path.join(HERE, role + ".pid"))
        except FileNotFoundError:
            pass
    return {"stopped": pids, "killed": killed, "left": left}


def retire(names, timeout):
    from distributed import Client

    with Client(config()["scheduler_address"], timeout=timeout) as client:
        retired = client.retire_workers(names=names, close_workers=True)
    return {"retired": sorted(retired)}


def main(argv):
    command = argv[0]
    if command == "start":
        result = start(argv[1])
    elif command == "stop":
        result = stop([r for r in argv[2:] or ROLES], float(argv[1]))
    elif command == "status":
        result = {role: running(role) for role in ROLES}
    elif command == "retire":
        result = retire(argv[2:], float(argv[1]))
    else:
        sys.exit("usage: ctl.py start ROLE | stop GRACE [ROLE...] | status"
                 " | retire TIMEOUT NAME...")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
'''


# -- reaching the node and the scheduler ------------------------------------------------------


def _pool(ctx: TaskContext, cluster: ClusterInfo) -> SSHPool:
    pool: SSHPool = plugin_services(ctx).ssh.pool(cluster.cluster_id)
    return pool


def _ctl(pool: SSHPool, node: NodeInfo, python: str, *words: str,
         timeout: float = 60.0) -> dict[str, Any]:
    line = " ".join(shlex.quote(w) for w in (python, f"{FOLDER}/ctl.py", *words))
    result: dict[str, Any] = json.loads(pool.run(node.ssh_node(), line, timeout=timeout).stdout)
    return result


def _log_tail(pool: SSHPool, node: NodeInfo, role: str, lines: int = 8) -> str:
    """The end of a process's log, after the error lines above it: a traceback's last lines
    say only that it failed, its cause (``OSError: address in use``) comes earlier."""
    try:
        text = pool.run(node.ssh_node(), f"tail -n 200 {FOLDER}/{role}.log", timeout=10,
                        check=False).stdout
    except SSHError as error:
        return f"(no log: {error})"
    all_lines = text.rstrip().splitlines()
    last = all_lines[-lines:]
    errors = [line for line in all_lines[:-lines] if "Error" in line or "Exception" in line]
    picked = [*errors[-5:], *(["..."] if errors else []), *last]
    return "\n".join(line[:300] for line in picked)


def dashboard_url(cluster: ClusterInfo) -> str:
    s = _settings(cluster)
    return f"http://{_hostport(s['scheduler'].address, s['dashboard'])}"


def _dashboard_json(cluster: ClusterInfo, path: str, timeout: float) -> Any:
    """A JSON document of the scheduler's dashboard, read as untrusted input (the node is
    the tenant's): the whole answer within ``timeout`` (and what the step has left), at most
    ``waits.STATUS_PAGE_LIMIT`` bytes, no redirect or proxy; ``waits.WaitStopped`` on a
    cancel."""
    s = _settings(cluster)
    return json.loads(read_status_page(s["scheduler"].address, s["dashboard"], path,
                                       timeout=timeout))


def scheduler_workers(cluster: ClusterInfo, timeout: float = 3.0
                      ) -> dict[str, str] | None:
    """The workers the scheduler lists, address by name; None if it does not answer."""
    try:
        listed = _dashboard_json(cluster, "/api/v1/get_workers", timeout)
        return {str(w["name"]): str(w["address"]) for w in listed["workers"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        LOG.debug("Dask scheduler of %s: %r", cluster.name, error)
        return None


def scheduler_listening(cluster: ClusterInfo, timeout: float = 3.0) -> bool:
    """Whether the scheduler listens on its port, not just on its dashboard's: the dashboard
    answers first, and a scheduler that then fails to bind its port exits. Its identity
    names its address once it listens (an error before); connected workers prove it too,
    when a transfer's metrics break the identity document."""
    settings = _settings(cluster)
    expected = f"tcp://{_hostport(settings['scheduler'].address, settings['port'])}"
    try:
        if _dashboard_json(cluster, "/json/identity.json", timeout).get("address") == expected:
            return True
    except (OSError, ValueError, AttributeError) as error:
        LOG.debug("Dask scheduler of %s: %r", cluster.name, error)
    return bool(scheduler_workers(cluster, timeout))


def _host(address: str) -> str:
    """``tcp://10.0.0.5:4242`` → ``10.0.0.5`` (``tcp://[::1]:4242`` → ``::1``)."""
    return address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")


def _worker_of(workers: dict[str, str] | None, node: NodeInfo) -> str | None:
    """The address of ``node``'s worker if the scheduler lists it (by name, on its host)."""
    address = (workers or {}).get(node.name)
    return address if address is not None and _host(address) == node.address else None


# -- tasks ------------------------------------------------------------------------------------


class _NodeTask(NodeTask):
    """A task on one node of a cluster: ``{"cluster": ClusterInfo dict, "node": NodeInfo
    dict}``, with the node's Python and a wait that watches its process."""

    @property
    def python(self) -> str:
        return str(_settings(self.cluster)["python"])

    def _wait(self, ctx: TaskContext, role: str,
              ready: Callable[[], dict[str, Any] | None], what: str) -> dict[str, Any]:
        """Poll ``ready()`` until it answers; fail early, with the log, if the process died.
        Never past the step's time (``waits.WaitTimedOut``), nor once its work is cancelled
        (``waits.WaitStopped``)."""
        pool = self.pool(ctx)
        timeout = float(self.args.get("timeout", START_TIMEOUT))
        wait = Wait(timeout, f"{what} on {self.node.name}")
        next_check = time.monotonic() + 2.0

        def probe() -> dict[str, Any] | None:
            nonlocal next_check
            answer = ready()
            if answer is not None:
                return dict(answer)
            now = time.monotonic()
            if not wait.over() and now >= next_check:
                next_check = now + 2.0
                if not _ctl(pool, self.node, self.python, "status")[role]:
                    raise DaskFailed(f"{what} on {self.node.name}: the process exited;"
                                     f" {role}.log ends:\n{_log_tail(pool, self.node, role)}")
            return None

        def expired() -> Exception:
            return DaskFailed(f"{what} on {self.node.name}: not ready after {timeout:g} s;"
                              f" {role}.log ends:\n{_log_tail(pool, self.node, role)}")

        return poll(wait, probe, expired=expired)


@task_type("dask.configure-node")
class ConfigureNode(_NodeTask):
    """Write ``dask/config.json`` and ``dask/ctl.py`` on the node (rewriting is harmless)."""

    idempotent = True
    retry = RetryPolicy(attempts=3, backoff=0.5)

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        cluster, node = self.cluster, self.node
        config = node_config(cluster, node)
        pool = self.pool(ctx)
        ctx.check_lease()
        pool.put_file(node.ssh_node(), f"{FOLDER}/config.json",
                      json.dumps(config, indent=2) + "\n", 0o644)
        pool.put_file(node.ssh_node(), f"{FOLDER}/ctl.py", CTL, 0o755)
        return {"node": node.name, "roles": sorted(config["argv"])}


@task_type("dask.start-scheduler")
class StartScheduler(_NodeTask):
    """Start the scheduler unless it runs, and wait until its dashboard answers."""

    idempotent = True
    retry = RetryPolicy(attempts=2, backoff=1.0)

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        pool = self.pool(ctx)
        ctx.check_lease()
        started = _ctl(pool, self.node, self.python, "start", SCHEDULER)
        ready = self._wait(ctx, SCHEDULER, self._ready, "the Dask scheduler")
        return {**ready, "pid": started["pid"], "started": started["started"]}

    def _ready(self) -> dict[str, Any] | None:
        if not scheduler_listening(self.cluster, timeout=1.0):
            return None
        port = _settings(self.cluster)["port"]
        return {"node": self.node.name,
                "address": f"tcp://{_hostport(self.node.address, port)}",
                "dashboard": dashboard_url(self.cluster)}

    def reconcile(self, ctx: TaskContext, intent: dict[str, Any]) -> Any:
        ready = self._ready()
        return None if ready is None else {**ready, "started": True}

    def revert(self, ctx: TaskContext, result: Any) -> None:
        _ctl(self.pool(ctx), self.node, self.python, "stop", str(STOP_GRACE),
             SCHEDULER)


@task_type("dask.start-worker")
class StartWorker(_NodeTask):
    """Start the node's worker unless it runs, and wait until the scheduler lists it."""

    idempotent = True
    retry = RetryPolicy(attempts=2, backoff=1.0)

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        pool = self.pool(ctx)
        ctx.check_lease()
        started = _ctl(pool, self.node, self.python, "start", WORKER)
        worker = self._wait(ctx, WORKER, self._ready, "the Dask worker")
        return {**worker, "pid": started["pid"], "started": started["started"]}

    def _ready(self) -> dict[str, Any] | None:
        address = _worker_of(scheduler_workers(self.cluster, timeout=1.0), self.node)
        return None if address is None else {"node": self.node.name, "address": address}

    def reconcile(self, ctx: TaskContext, intent: dict[str, Any]) -> Any:
        ready = self._ready()
        return None if ready is None else {**ready, "started": True}

    def revert(self, ctx: TaskContext, result: Any) -> None:
        _ctl(self.pool(ctx), self.node, self.python, "stop", str(STOP_GRACE),
             WORKER)


@task_type("dask.retire-workers")
class RetireWorkers(Task):
    """Drain workers: the scheduler copies the data only they hold to the other workers, then
    closes them (``Client.retire_workers``, run on the scheduler node); wait until the
    scheduler lists none of them. Args: ``{"cluster": ..., "nodes": [NodeInfo dict...]}``."""

    idempotent = True  # retiring a worker already gone is a no-op
    retry = RetryPolicy(attempts=2, backoff=1.0)

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        cluster = ClusterInfo.from_dict(self.args["cluster"])
        nodes = [NodeInfo.from_dict(n) for n in self.args["nodes"]]
        settings = _settings(cluster)
        timeout = float(self.args.get("timeout", RETIRE_TIMEOUT))
        what = f"retiring Dask workers of {cluster.name}"
        listed = scheduler_workers(cluster)
        if listed is None:
            # Nothing to drain to: the data is lost with the scheduler anyway.
            LOG.warning("Dask scheduler of %s does not answer; stopping %s without draining",
                        cluster.name, [n.name for n in nodes])
            return {"retired": [], "drained": False}
        names = [n.name for n in nodes if _worker_of(listed, n) is not None]
        retired: list[str] = []
        if names:
            pool = _pool(ctx, cluster)
            ctx.check_lease()
            # The remote client's own timeout too is cut to what the step has left (the
            # command itself is killed at the step's end anyway).
            retiring = max(1.0, Wait(timeout, what).seconds)
            retired = _ctl(pool, settings["scheduler"], settings["python"], "retire",
                           f"{retiring:g}", *names, timeout=retiring + 30)["retired"]
        left: list[str] = []

        def probe() -> dict[str, Any] | None:
            nonlocal left
            listed = scheduler_workers(cluster)
            left = [n.name for n in nodes if _worker_of(listed, n) is not None]
            if listed is not None and not left:
                return {"retired": retired, "drained": True}
            return None

        return poll(Wait(timeout, what), probe,
                    expired=lambda: DaskFailed(f"workers {left} of {cluster.name} are still"
                                               f" connected {timeout:g} s after being retired"),
                    detail=lambda: f"workers {left} are still connected")


@task_type("dask.stop-node")
class StopNode(_NodeTask):
    """Stop the node's Dask processes (SIGTERM, then SIGKILL). Args also ``roles`` (default
    both) and ``best_effort``: then an unreachable node or a missing script is reported in
    the result instead of failing the flow."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        roles = list(self.args.get("roles") or ROLES)
        grace = float(self.args.get("grace", STOP_GRACE))
        pool = self.pool(ctx)
        words = " ".join(shlex.quote(w) for w in (self.python, f"{FOLDER}/ctl.py", "stop",
                                                  str(grace), *roles))
        # A node that was never configured has nothing to stop.
        line = f"if [ -f {FOLDER}/ctl.py ]; then {words}; else echo null; fi"
        try:
            ctx.check_lease()
            stopped = json.loads(pool.run(self.node.ssh_node(), line,
                                          timeout=grace + 30).stdout)
        except (SSHError, ValueError) as error:
            if not self.args.get("best_effort"):
                raise
            LOG.warning("could not stop Dask on %s: %s", self.node.name, error)
            return {"node": self.node.name, "stopped": False, "error": str(error)}
        if stopped and stopped["left"]:
            raise DaskFailed(f"Dask processes {stopped['left']} on {self.node.name}"
                             " survive SIGKILL")
        return {"node": self.node.name, "stopped": True,
                "pids": (stopped or {}).get("stopped", [])}


# -- the plugin -------------------------------------------------------------------------------


class DaskPlugin(Plugin):
    name = "dask"
    title = "Dask"
    description = "Dask distributed clusters: one scheduler and workers."

    def unavailable(self) -> str | None:
        """Why the plugin cannot run here (distributed is missing), or None when it can."""
        try:
            dask_version()
        except PluginUnavailable as missing:
            return str(missing)
        return None

    def versions(self) -> list[str]:
        try:
            return [dask_version()]
        except PluginUnavailable:
            return []

    def summary(self) -> dict[str, Any]:
        return summary_of(self, super().summary())

    def node_processes(self, version: str) -> dict[str, list[str]]:
        return {"Dask": [SCHEDULER, WORKER]}

    def topology(self, version: str) -> Topology:
        return Topology({SCHEDULER: (1, 1), WORKER: (1, None)})

    def configs(self, version: str) -> list[ConfigOption]:
        return [
            ConfigOption("Scheduler port", "Dask", 8786, "int"),
            ConfigOption("Dashboard port", "Dask", 8787, "int"),
            ConfigOption("Worker threads", "Dask", 1, "int", scope="node"),
            ConfigOption("Worker memory", "Dask", "512MB",
                         description="Memory limit of each worker (dask --memory-limit)"),
            ConfigOption("Python", "Dask", sys.executable,
                         description="The nodes' interpreter that has distributed installed"),
        ]

    def check_config(self, version: str, target: str, name: str, value: Any) -> None:
        super().check_config(version, target, name, value)
        if target == "Dask":
            check_setting(name, value)

    def edp_job_types(self, version: str) -> list[str]:
        return ["Dask", "Shell"]

    def get_edp_engine(self, cluster: ClusterInfo, job_type: str, ssh: SSHPool, *,
                       storage_policy: StoragePolicy | None = None) -> JobEngine | None:
        """``Dask``: a Python script run on the scheduler's node as a client of the cluster's
        scheduler; ``Shell``: a script run on the scheduler's node."""
        nodes = [n.job_node() for n in cluster.with_process(SCHEDULER)] + [
            n.job_node() for n in cluster.nodes if SCHEDULER not in n.processes]
        if job_type == "Dask":
            s = _settings(cluster)
            return DaskJobEngine(ssh, nodes, python=s["python"], scheduler_address=(
                f"tcp://{_hostport(s['scheduler'].address, s['port'])}"))
        if job_type == "Shell":
            return ShellJobEngine(ssh, nodes)
        return None

    # -- provisioning -------------------------------------------------------------------------

    def configure(self, cluster: ClusterInfo) -> Flow:
        # Checked again here, for clusters whose configs were accepted before the API did.
        self.recheck_configs(cluster)
        flow = Flow()
        for node in cluster.nodes:
            flow.add(node_task_id("configure", node), ConfigureNode(node_args(cluster, node)))
        return flow

    def start(self, cluster: ClusterInfo) -> Flow:
        self.recheck_configs(cluster)
        flow = Flow()
        scheduler = _settings(cluster)["scheduler"]
        first = flow.add("start-scheduler", StartScheduler(node_args(cluster, scheduler)))
        for node in cluster.with_process(WORKER):
            flow.add(node_task_id("start", node), StartWorker(node_args(cluster, node)),
                     requires=[first])
        return flow

    def scale(self, cluster: ClusterInfo, added: list[NodeInfo]) -> Flow:
        self.recheck_configs(cluster)
        flow = Flow()
        for node in added:
            configured = flow.add(node_task_id("configure", node),
                                  ConfigureNode(node_args(cluster, node)))
            if WORKER in node.processes:
                flow.add(node_task_id("start", node), StartWorker(node_args(cluster, node)),
                         requires=[configured])
        return flow

    def decommission(self, cluster: ClusterInfo, removed: list[NodeInfo]) -> Flow:
        flow = Flow()
        drained = flow.add("retire-workers", RetireWorkers(
            {"cluster": cluster.to_dict(), "nodes": [n.to_dict() for n in removed]}))
        for node in removed:
            flow.add(node_task_id("stop", node),
                     StopNode(node_args(cluster, node, roles=[WORKER])),
                     requires=[drained])
        return flow

    def on_terminate(self, cluster: ClusterInfo) -> Flow:
        flow = Flow(rollback_on_cancel=False)
        for node in cluster.nodes:
            flow.add(node_task_id("stop", node),
                     StopNode(node_args(cluster, node, best_effort=True)))
        return flow

    def health(self, cluster: ClusterInfo, ssh: SSHPool) -> Health:
        scheduler = _settings(cluster)["scheduler"]
        workers = cluster.with_process(WORKER)
        listed = scheduler_workers(cluster)
        if listed is None:  # once more: one slow answer does not make a cluster RED
            pause(0.5, f"checking the Dask scheduler of {cluster.name}")
            listed = scheduler_workers(cluster)
        if listed is None:
            tail = _log_tail(ssh, scheduler, SCHEDULER, lines=3)
            return Health("RED", [HealthCheck(
                "Dask scheduler", "RED",
                f"{scheduler.name} does not answer at {dashboard_url(cluster)}; log: {tail}")],
                [scheduler.name])
        missing = [n.name for n in workers if _worker_of(listed, n) is None]
        connected = len(workers) - len(missing)
        status = "GREEN" if not missing else "YELLOW" if connected else "RED"
        described = f"{connected} of {len(workers)} workers connected"
        if missing:
            described += f"; missing: {', '.join(missing)}"
        checks = [HealthCheck("Dask scheduler", "GREEN",
                              f"{scheduler.name} answers at {dashboard_url(cluster)}"),
                  HealthCheck("Dask workers", status, described)]
        return Health(status, checks, missing)

    def cluster_urls(self, cluster: ClusterInfo) -> dict[str, dict[str, str]]:
        """The scheduler's dashboard and the address clients connect to."""
        s = _settings(cluster)
        return {"Dask": {"Dashboard": dashboard_url(cluster),
                         "Scheduler": f"tcp://{_hostport(s['scheduler'].address, s['port'])}"}}

    def open_ports(self, node: NodeInfo, version: str) -> list[int]:
        # Worker ports are random: workers and the scheduler must reach each other freely;
        # these are the ports clients come to.
        return [8786, 8787] if SCHEDULER in node.processes else []
