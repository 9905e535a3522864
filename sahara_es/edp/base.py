"""The job engine interface (Sahara's EDP refactor: one job manager, many job engines).

A plugin gives the job engine for a cluster and job type (``Plugin.get_edp_engine``); the
job manager (``edp.manager``) never touches a cluster itself: it hands the engine a
``JobRun`` (the job with its binaries fetched, its data sources' URLs resolved) and records
what the engine answers as the job's events.

``run_job`` must be safe to call again for the same job (an engine that took over a job
whose submission left no outcome calls it again): it finds what was already submitted
for ``JobRun.job_id`` and answers that submission's engine job id, never a second run.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import Any

from sahara_es.commands.secrets import SECRET_CONFIG
from sahara_es.infra.ssh import Node


class JobInvalid(Exception):
    """The job cannot run as given (a 400 at submission; a failure when found later)."""


class JobEngineError(Exception):
    """The engine could not reach or drive the job this time (the node is unreachable, a
    command timed out): the manager tries again."""

    retryable = True


class EngineState(enum.StrEnum):
    """What a job engine says of a job it runs (Sahara's statuses the engine may report)."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def final(self) -> bool:
        return self is not EngineState.RUNNING


@dataclass(frozen=True)
class JobState:
    state: EngineState
    description: str = ""
    """Why it ended as it did (an exit code, the last lines of stderr...)."""
    exit_code: int | None = None


@dataclass(frozen=True)
class JobLogs:
    stdout: str = ""
    stderr: str = ""
    """The last bytes of each (``tail_bytes``), decoded with replacement."""


@dataclass(frozen=True)
class JobNode:
    """A cluster node as a job engine sees it (built by the plugin from its cluster)."""

    name: str
    processes: list[str]
    ssh: Node
    home: str = ""


@dataclass(frozen=True)
class JobFile:
    """A job binary as the job sees it: a file ``name`` in the job's working folder."""

    name: str
    data: bytes


@dataclass(frozen=True)
class DataSourceAccess:
    """A data source as a job engine needs it: its URL (placeholders resolved) and, for
    object storage, how to reach it (never shown, never logged)."""

    url: str
    type: str
    credentials: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRun:
    """One job as the manager hands it to a job engine."""

    job_id: str
    job_type: str
    mains: list[JobFile]
    libs: list[JobFile]
    configs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    input: DataSourceAccess | None = None
    output: DataSourceAccess | None = None
    data_sources: list[DataSourceAccess] = field(default_factory=list)
    """Every data source the job names (input, output, those its args refer to)."""

    def secrets(self) -> list[str]:
        """What must never appear in a log or an error this job's engine writes."""
        found = []
        for source in [*self.data_sources, self.input, self.output]:
            if source is not None:
                found += [v for k, v in source.credentials.items()
                          if v and k in ("password", "secretkey", "secret_key", "token")]
        found += [v for k, v in self.configs.items()
                  if isinstance(v, str) and v and SECRET_CONFIG.search(k)]
        return found


class JobEngine(abc.ABC):
    """Runs jobs of some types on one cluster."""

    @abc.abstractmethod
    def get_supported_job_types(self) -> list[str]: ...

    def validate_job_execution(self, job: JobRun) -> None:
        """``JobInvalid`` unless the job can run on this engine as given."""
        if job.job_type not in self.get_supported_job_types():
            raise JobInvalid(f"this cluster runs {', '.join(self.get_supported_job_types())}"
                             f" jobs, not {job.job_type}")

    def get_possible_job_config(self, job_type: str) -> dict[str, Any]:
        """Sahara's hints: ``{"configs": [...], "args": [...] | None, "params": {} | None}``."""
        return {"configs": [], "args": [], "params": None}

    @abc.abstractmethod
    def run_job(self, job: JobRun) -> str:
        """Submit the job (once, whatever the number of calls for ``job.job_id``); its
        engine job id."""

    @abc.abstractmethod
    def get_job_status(self, engine_job_id: str) -> JobState: ...

    @abc.abstractmethod
    def cancel_job(self, engine_job_id: str, timeout: float) -> JobState:
        """Stop the job; its state after at most ``timeout`` seconds (``KILLED`` once it is
        gone, ``RUNNING`` if it would not stop in time, or how it ended before the kill)."""

    def get_job_logs(self, engine_job_id: str, tail_bytes: int) -> JobLogs:
        return JobLogs()
