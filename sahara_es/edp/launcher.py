"""A job's process on a node, detached from the SSH session that started it.

Every job runs in a folder of its own under the node's home, ``$HOME/edp/<job id>/``::

    launch.sh       the job's command (written by its engine, every tenant word quoted)
    secrets.json    what the job's logs must never show (redacted engine-side)
    <files>         the job's binaries (mains and libs), by name
    start, pid      the wrapper's start time (field 22 of /proc/PID/stat) and pid: the
                    wrapper leads a session (and process group) of its own
    stdout, stderr  what the job prints
    exit_code       written (temp + mv) when the job ends by itself
    killed          written before the job's process group is signalled

Launching is guarded by an atomic ``mkdir`` of the folder: the binaries are first uploaded
into a staging folder of this launch only, then one shell command makes the folder, moves
them in and starts the wrapper. A second launch of the same job (an engine that took over a
job whose submission left no outcome) loses the ``mkdir``: it starts nothing, drops its
staging folder and answers the first launch's pid (waiting briefly for it).

A pid alone proves nothing (pids are reused): the process is the job's only while its start
time is the recorded one, and a process group is signalled only while its leader is the
job's wrapper, or while the group still exists without a leader (a pid cannot be reused as
long as a process group of that id exists).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sahara_es.edp.base import (
    EngineState,
    JobEngine,
    JobEngineError,
    JobInvalid,
    JobLogs,
    JobNode,
    JobRun,
    JobState,
)
from sahara_es.infra.ssh import Node, SSHError, SSHPool, redact

EDP_FOLDER = "edp"
"""Relative to the node's home, where every SSH command of a node starts."""

STAGING = f"{EDP_FOLDER}/.staging"

RESERVED_NAMES = frozenset({"launch.sh", "secrets.json", "start", "pid", "stdout", "stderr",
                            "exit_code", "killed", "start.tmp", "pid.tmp", "exit_code.tmp",
                            "job.properties"})
"""The folder's own files: no job binary may take one of these names."""

ENGINE_FILES = frozenset({"job.properties"})
"""Those an engine may write beside the binaries (Spark's properties file)."""

FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,127}")

NEVER_STARTED_AFTER = 120
"""Seconds after which a folder without a pid is a launch that died before it started."""

KILL_GRACE = 5.0

SECRETS_LIMIT = 65536


class LauncherError(Exception):
    """The node could not be reached or driven this time (the caller may try again)."""


def check_job_id(job_id: str) -> str:
    """The job id, which names a folder: a UUID in its canonical form, nothing else."""
    try:
        canonical = str(uuid.UUID(job_id))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"not a job id (a UUID): {job_id!r}") from None
    if canonical != job_id:
        raise ValueError(f"not a job id in canonical UUID form: {job_id!r}")
    return job_id


def check_file_name(name: str) -> str:
    """A binary's name as a file of the job's folder: a plain name, not one of the folder's
    own files."""
    if not isinstance(name, str) or not FILE_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{name!r} cannot name a file of the job's folder: use letters,"
                         " digits and ._+- (not first), at most 128 characters")
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} is a name the job's folder keeps for itself")
    return name


def folder(job_id: str) -> str:
    return f"{EDP_FOLDER}/{check_job_id(job_id)}"


@dataclass(frozen=True)
class Launched:
    pid: int | None
    """The wrapper's pid (None: the first launch has not recorded one, or died before)."""
    started: bool
    """Whether this launch started the job (False: an earlier launch had)."""


@dataclass(frozen=True)
class ProcessStatus:
    state: Literal["running", "exited", "vanished", "starting", "missing"]
    """``starting``: the folder is there but no pid yet (a launch in progress);
    ``missing``: no folder (never launched on this node, or its folder was removed)."""
    exit_code: int | None = None
    killed: bool = False
    pid: int | None = None


# The wrapper's start time and whether a pid is the job's live wrapper; whether a process
# group still has a live (not zombie) member. Zombies count as gone: PID 1 may not reap.
_FUNCTIONS = (
    'starttime() { l=$(cat /proc/"$1"/stat 2>/dev/null) || return 1; r=${l##*) };'
    ' set -- $r; [ "$1" != Z ] || return 1; shift 19; echo "$1"; }; '
    'ours() { [ -s pid ] && [ -s start ] || return 1; p=$(cat pid); s=$(cat start);'
    ' [ "$(starttime "$p")" = "$s" ]; }; '
    'group_alive() { for f in /proc/[0-9]*/stat; do { read -r l < "$f"; } 2>/dev/null'
    ' || continue;'
    ' r=${l##*) }; set -- $r; [ "$3" = "$G" ] && [ "$1" != Z ]'
    ' && return 0; done; return 1; }; '
)

# Run in the job's folder by the wrapper (the session leader): its start time and pid, then
# the job, then its exit code; the pid file's presence means both are there.
_WRAPPER = ('l=$(cat /proc/$$/stat); r=${l##*) }; set -- $r; shift 19;'
            ' echo "$1" > start.tmp && mv start.tmp start && echo $$ > pid.tmp'
            ' && mv pid.tmp pid || exit 1;'
            # Killed while its launch was in progress (no pid to signal yet): never runs.
            ' [ -e killed ] && exit 1;'
            ' sh ./launch.sh > stdout 2> stderr < /dev/null; code=$?;'
            ' echo $code > exit_code.tmp && mv exit_code.tmp exit_code')


class Launcher:
    """Starts, follows, kills and reads jobs' processes on nodes, through ``pool``."""

    def __init__(self, pool: SSHPool, *, command_timeout: float = 60.0,
                 pid_wait: float = 10.0, upload_timeout: float = 120.0) -> None:
        self.pool = pool
        self.command_timeout = command_timeout
        self.pid_wait = pid_wait
        self.upload_timeout = upload_timeout

    def _run(self, node: Node, command: str, *, timeout: float | None = None,
             secrets: Sequence[str] = ()) -> str:
        try:
            result = self.pool.run(node, command, timeout=timeout or self.command_timeout,
                                   secrets=secrets)
        except SSHError as error:
            raise LauncherError(str(error)) from error
        return result.stdout

    # -- launching ------------------------------------------------------------------------

    def exists(self, node: Node, job_id: str) -> bool:
        where = shlex.quote(folder(job_id))
        return self._run(node, f"[ -d {where} ] && echo yes || echo no").strip() == "yes"

    def launch(self, node: Node, job_id: str, script: str,
               files: Sequence[tuple[str, bytes]] = (), secrets: Sequence[str] = (),
               engine_files: Sequence[tuple[str, bytes]] = ()) -> Launched:
        """Start ``script`` (a shell script, run with ``sh`` in the job's folder) once for
        ``job_id`` on ``node``, ``files`` (the job's binaries) and ``engine_files`` (an
        engine's own, named in ``ENGINE_FILES``) uploaded into the folder first."""
        target = folder(job_id)
        names = [check_file_name(name) for name, _ in files]
        for name, _ in engine_files:
            if name not in ENGINE_FILES:
                raise ValueError(f"{name!r} is not a file name kept for engines")
            names.append(name)
        if len(set(names)) != len(names):
            raise ValueError("two of the job's files have the same name")
        files = [*files, *engine_files]
        if not self.exists(node, job_id):
            staging = f"{STAGING}/{job_id}.{uuid.uuid4().hex[:12]}"
            try:
                for name, data in files:
                    self.pool.put_file(node, f"{staging}/{name}", data, 0o600,
                                       timeout=self.upload_timeout)
                self.pool.put_file(node, f"{staging}/secrets.json",
                                   json.dumps(sorted(set(secrets))), 0o600)
                self.pool.put_file(node, f"{staging}/launch.sh", script, 0o700)
            except SSHError as error:
                self._drop_staging(node, staging)
                raise LauncherError(f"uploading the job's files to {node}: {error}") from error
            return self._start(node, target, staging)
        return self._start(node, target, None)

    def _drop_staging(self, node: Node, staging: str) -> None:
        # A staging folder left over is harmless.
        with contextlib.suppress(SSHError):
            self.pool.run(node, f"rm -rf {shlex.quote(staging)}", timeout=30, check=False)

    def _start(self, node: Node, target: str, staging: str | None) -> Launched:
        d = shlex.quote(target)
        rounds = max(1, int(self.pid_wait * 10))
        guard = ""
        if staging is not None:
            s = shlex.quote(staging)
            guard = (f"mkdir -p {EDP_FOLDER} && chmod 700 {EDP_FOLDER}; s={s}; "
                     # What launches that died mid-upload left behind, an hour on.
                     f"find {STAGING} -mindepth 1 -maxdepth 1 -mmin +60 -exec rm -rf {{}} +"
                     " 2>/dev/null; "
                     f"if mkdir -m 700 {d} 2>/dev/null; then mv \"$s\"/* {d}/ && rm -rf \"$s\""
                     f" && ( cd {d} && nohup setsid sh -c {shlex.quote(_WRAPPER)}"
                     " > /dev/null 2>&1 < /dev/null & ) && first=started; "
                     "else rm -rf \"$s\"; fi; ")
        command = (
            "cd \"$HOME\" || exit 3; first=existing; "
            + guard
            + f"cd {d} || {{ echo gone; exit 0; }}; "
            + f"i=0; while [ ! -s pid ] && [ $i -lt {rounds} ]; do sleep 0.1; i=$((i+1));"
            " done; echo \"$first $(cat pid 2>/dev/null || echo none)\""
        )
        words = self._run(node, command, timeout=self.command_timeout + self.pid_wait).split()
        if not words or words[0] == "gone":
            raise LauncherError(f"the job's folder {target} on {node} is not there")
        pid = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
        return Launched(pid, words[0] == "started")

    # -- following ------------------------------------------------------------------------

    def status(self, node: Node, job_id: str) -> ProcessStatus:
        d = shlex.quote(folder(job_id))
        command = (
            _FUNCTIONS + f"cd {d} 2>/dev/null || {{ echo missing; exit 0; }}; "
            "k=0; [ -e killed ] && k=1; "
            "if [ -s exit_code ]; then echo exited $k $(cat exit_code); exit 0; fi; "
            "if [ ! -s pid ]; then"
            f" if [ -n \"$(find . -maxdepth 0 -mmin +{NEVER_STARTED_AFTER // 60})\" ];"
            " then echo vanished $k; else echo starting $k; fi; exit 0; fi; "
            "if ours; then echo running $k $(cat pid); exit 0; fi; "
            # The wrapper may have written its exit code since the first look.
            "if [ -s exit_code ]; then echo exited $k $(cat exit_code); else echo vanished $k;"
            " fi"
        )
        return _parse_status(self._run(node, command))

    def kill(self, node: Node, job_id: str, timeout: float,
             grace: float = KILL_GRACE) -> ProcessStatus:
        """Mark the job killed, TERM its process group, KILL it after ``grace`` seconds, and
        wait (at most ``timeout`` seconds in all) until no process of the group is left."""
        d = shlex.quote(folder(job_id))
        grace_rounds = max(1, int(min(grace, timeout) * 5))
        all_rounds = max(grace_rounds, int(timeout * 5))
        command = (
            _FUNCTIONS + f"cd {d} 2>/dev/null || {{ echo missing; exit 0; }}; "
            "[ -e killed ] || date +%s > killed; G=$(cat pid 2>/dev/null); "
            # Signalled only while the group is the job's: its leader is the job's wrapper,
            # or the group lives on without its leader (its id cannot be reused meanwhile).
            "if [ -n \"$G\" ] && { ours || { [ ! -e /proc/$G ] && group_alive; }; }; then"
            " kill -TERM -$G 2>/dev/null; i=0;"
            f" while group_alive && [ $i -lt {grace_rounds} ]; do sleep 0.2; i=$((i+1)); done;"
            " if group_alive; then kill -KILL -$G 2>/dev/null; fi;"
            f" while group_alive && [ $i -lt {all_rounds} ]; do sleep 0.2; i=$((i+1)); done;"
            " if group_alive; then echo alive; exit 0; fi; fi; echo gone"
        )
        answer = self._run(node, command, timeout=timeout + self.command_timeout).strip()
        if answer == "missing":
            return ProcessStatus("missing")
        status = self.status(node, job_id)
        if answer == "alive":
            return ProcessStatus("running", status.exit_code, True, status.pid)
        return status

    def logs(self, node: Node, job_id: str, tail_bytes: int,
             secrets: Sequence[str] = ()) -> tuple[str, str]:
        """The last ``tail_bytes`` of the job's stdout and stderr, with the job's secrets
        (those recorded at launch and ``secrets``) redacted (before the cut)."""
        d = shlex.quote(folder(job_id))
        size = max(0, int(tail_bytes))
        known = [*secrets, *self.recorded_secrets(node, job_id)]
        # Read a little more than asked, so that a secret straddling the cut is redacted.
        read = size + max((len(s) for s in known), default=0)
        parts = []
        for name in ("stdout", "stderr"):
            text = self._run(node, f"cd {d} 2>/dev/null && tail -c {read} {name}"
                                   " 2>/dev/null; exit 0", secrets=known)
            parts.append(redact(text, known)[-size:] if size else "")
        return parts[0], parts[1]

    def recorded_secrets(self, node: Node, job_id: str) -> list[str]:
        d = shlex.quote(folder(job_id))
        text = self._run(node, f"cd {d} 2>/dev/null && head -c {SECRETS_LIMIT} secrets.json"
                               " 2>/dev/null; exit 0")
        try:
            found = json.loads(text) if text.strip() else []
        except ValueError:
            return []
        return [s for s in found if isinstance(s, str) and s] if isinstance(found, list) else []

    def last_stderr_line(self, node: Node, job_id: str, secrets: Sequence[str] = ()) -> str:
        """The line of the job's stderr that best says why it failed: the last one naming
        an error or exception (a traceback's last line, a JVM's exception), else the last
        one (a program that logs on after its error, as Spark does, is not misquoted)."""
        _, err = self.logs(node, job_id, 8000, secrets)
        return failure_line(err)


_TELLING = re.compile(r"\w(Error|Exception)\b|\bERROR\b|^Traceback")


def failure_line(stderr: str) -> str:
    """The last line of ``stderr`` naming an error or exception, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [line for line in lines if _TELLING.search(line)]
    return (telling or lines or [""])[-1][:500]


def _parse_status(answer: str) -> ProcessStatus:
    words = answer.split()
    if not words or words[0] == "missing":
        return ProcessStatus("missing")
    state, killed = words[0], len(words) > 1 and words[1] == "1"
    number = int(words[2]) if len(words) > 2 and words[2].lstrip("-").isdigit() else None
    if state == "exited":
        return ProcessStatus("exited", number, killed)
    if state == "running":
        return ProcessStatus("running", None, killed, number)
    if state == "starting":
        return ProcessStatus("starting", None, killed)
    return ProcessStatus("vanished", None, killed)


# -- the engines' common part ---------------------------------------------------------------

PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_ARGS = 1000
MAX_ARG_LENGTH = 65536


def check_text(value: object, what: str) -> str:
    """A tenant's string handed to a command (always quoted): a string, no NUL, bounded."""
    if not isinstance(value, str):
        raise JobInvalid(f"{what} must be a string, not {type(value).__name__}")
    if "\0" in value:
        raise JobInvalid(f"{what} holds a NUL character")
    if len(value) > MAX_ARG_LENGTH:
        raise JobInvalid(f"{what} is longer than {MAX_ARG_LENGTH} characters")
    return value


def check_args(job: JobRun) -> list[str]:
    if not isinstance(job.args, list):
        raise JobInvalid("args must be a list of strings")
    if len(job.args) > MAX_ARGS:
        raise JobInvalid(f"a job takes at most {MAX_ARGS} args")
    return [check_text(arg, f"arg {i}") for i, arg in enumerate(job.args)]


def check_params(job: JobRun) -> dict[str, str]:
    """Params as environment variables: names ``[A-Za-z_][A-Za-z0-9_]*``, values strings."""
    if not isinstance(job.params, dict):
        raise JobInvalid("params must be an object of names to values")
    found = {}
    for name, value in job.params.items():
        if not isinstance(name, str) or not PARAM_NAME.fullmatch(name):
            raise JobInvalid(f"param {name!r} is not an environment variable name"
                             " ([A-Za-z_][A-Za-z0-9_]*)")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise JobInvalid(f"param {name} must be a string or a number")
        found[name] = check_text(str(value), f"param {name}")
    return found


def check_files(job: JobRun) -> None:
    names = []
    for file in [*job.mains, *job.libs]:
        try:
            names.append(check_file_name(file.name))
        except ValueError as error:
            raise JobInvalid(f"job binary {error}") from None
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise JobInvalid(f"two of the job's binaries are named {duplicated[0]!r}")


MANAGER_CONFIGS = frozenset({"edp.substitute_data_source_for_name",
                             "edp.substitute_data_source_for_uuid"})
"""Configs of every job type that the job manager reads (when the job is created)."""


def check_configs(job: JobRun, known: set[str]) -> None:
    known = known | MANAGER_CONFIGS
    if not isinstance(job.configs, dict):
        raise JobInvalid("configs must be an object of names to values")
    for name in job.configs:
        if not isinstance(name, str):
            raise JobInvalid(f"config names are strings, not {name!r}")
        if name.startswith("edp.") and name not in known:
            raise JobInvalid(f"{job.job_type} jobs have no config {name!r}"
                             f"{'; they have ' + ', '.join(sorted(known)) if known else ''}")


def exports(env: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def config_hint(name: str, description: str, value: str = "") -> dict[str, str]:
    return {"name": name, "value": value, "description": description}


class LaunchedJobEngine(JobEngine):
    """A job engine whose jobs are processes started by the ``Launcher`` on one node of the
    cluster. The engine job id is ``<node name>/<job id>``: whoever holds it (another
    engine process following a job started by a dead one) finds the job's folder."""

    job_types: tuple[str, ...] = ()

    def __init__(self, pool: SSHPool, nodes: list[JobNode]) -> None:
        self.pool = pool
        self.nodes = list(nodes)
        self.launcher = Launcher(pool)

    def get_supported_job_types(self) -> list[str]:
        return list(self.job_types)

    # -- what each engine says ------------------------------------------------------------

    def job_node(self, job: JobRun) -> JobNode:
        """The node the job runs on: ``edp.node`` (a node's name or a process), else the
        master, the scheduler or the namenode (Sahara ran Shell and Java jobs on the
        master), else the first node."""
        if "edp.node" in job.configs:
            return self.node_named(job.configs["edp.node"])
        node = self.node_with("master", "scheduler", "namenode")
        if node is None:
            if not self.nodes:
                raise JobInvalid("the cluster has no node to run the job on")
            node = self.nodes[0]
        return node

    def script(self, job: JobRun, node: JobNode) -> tuple[str, list[tuple[str, bytes]]]:
        """The job's launch script and its engine's own files (beside the binaries)."""
        raise NotImplementedError

    def after_kill(self, job_id: str, node: JobNode, timeout: float) -> bool:
        """Once the job's process group is gone: whether nothing of the job is left
        elsewhere (Spark: the master no longer lists its application)."""
        return True

    # -- shared ---------------------------------------------------------------------------

    def node_with(self, *processes: str) -> JobNode | None:
        for process in processes:
            for node in self.nodes:
                if process in node.processes:
                    return node
        return None

    def node_named(self, wanted: object) -> JobNode:
        """``edp.node``: a node's name or one of the processes a node runs."""
        if not isinstance(wanted, str) or not wanted:
            raise JobInvalid("edp.node names a node or a node process")
        for node in self.nodes:
            if node.name == wanted:
                return node
        found = self.node_with(wanted)
        if found is None:
            raise JobInvalid(f"edp.node: the cluster has no node or process {wanted!r}")
        return found

    def run_job(self, job: JobRun) -> str:
        self.validate_job_execution(job)
        node = self.job_node(job)
        script, own = self.script(job, node)
        files = [(f.name, f.data) for f in [*job.mains, *job.libs]]
        try:
            self.launcher.launch(node.ssh, job.job_id, script, files, job.secrets(), own)
        except LauncherError as error:
            raise JobEngineError(redact(str(error), job.secrets())) from error
        except ValueError as error:
            raise JobInvalid(str(error)) from error
        return f"{node.name}/{job.job_id}"

    def locate(self, engine_job_id: str) -> tuple[JobNode | None, str]:
        name, _, job_id = str(engine_job_id).rpartition("/")
        try:
            check_job_id(job_id)
        except ValueError as error:
            raise JobInvalid(f"not an engine job id of this engine: {engine_job_id!r}"
                             ) from error
        node = next((n for n in self.nodes if n.name == name), None)
        return node, job_id

    def get_job_status(self, engine_job_id: str) -> JobState:
        node, job_id = self.locate(engine_job_id)
        if node is None:
            return JobState(EngineState.FAILED, f"the job's node {engine_job_id.rpartition('/')[0]}"
                                                " is no longer in the cluster")
        try:
            status = self.launcher.status(node.ssh, job_id)
            return self._state(node, job_id, status)
        except LauncherError as error:
            raise JobEngineError(str(error)) from error

    def _state(self, node: JobNode, job_id: str, status: ProcessStatus) -> JobState:
        if status.state in ("running", "starting"):
            return JobState(EngineState.RUNNING)
        if status.state == "missing":
            return JobState(EngineState.FAILED, f"no trace of the job on {node.name}: its"
                                                " folder is gone")
        if status.killed:
            return JobState(EngineState.KILLED, "killed", status.exit_code)
        if status.state == "exited" and status.exit_code == 0:
            return JobState(EngineState.SUCCEEDED, "exit code 0", 0)
        if status.state == "exited":
            last = self.launcher.last_stderr_line(node.ssh, job_id)
            return JobState(EngineState.FAILED,
                            f"exit code {status.exit_code}: {last}".rstrip(": "),
                            status.exit_code)
        return JobState(EngineState.FAILED, f"the job's process on {node.name} is gone"
                                            " without an exit code (killed, or the node"
                                            " restarted)")

    def cancel_job(self, engine_job_id: str, timeout: float) -> JobState:
        node, job_id = self.locate(engine_job_id)
        if node is None:
            return self.get_job_status(engine_job_id)
        started = time.monotonic()
        try:
            before = self.launcher.status(node.ssh, job_id)
            if before.state in ("exited", "vanished", "missing") and not before.killed:
                return self._state(node, job_id, before)  # it ended before the kill
            status = self.launcher.kill(node.ssh, job_id, timeout)
        except LauncherError as error:
            raise JobEngineError(str(error)) from error
        if status.state in ("running", "starting"):
            return JobState(EngineState.RUNNING, "the job's processes would not stop in time")
        left = max(0.0, timeout - (time.monotonic() - started))
        if not self.after_kill(job_id, node, left):
            return JobState(EngineState.RUNNING, "the job's driver is gone but the cluster"
                                                 " still runs its application")
        return JobState(EngineState.KILLED, "killed", status.exit_code)

    def get_job_logs(self, engine_job_id: str, tail_bytes: int) -> JobLogs:
        node, job_id = self.locate(engine_job_id)
        if node is None:
            return JobLogs()
        try:
            out, err = self.launcher.logs(node.ssh, job_id, tail_bytes)
        except LauncherError as error:
            raise JobEngineError(str(error)) from error
        return JobLogs(out, err)
