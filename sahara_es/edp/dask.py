"""Dask jobs (a sahara-es type): a Python script run with the cluster's interpreter on the
scheduler's node, as a client of the cluster: ``DASK_SCHEDULER_ADDRESS`` is set, so that
``distributed.Client()`` connects to the scheduler. Libs are files beside the script (on
its ``sys.path``, since it runs in their folder); args are the script's arguments."""

from __future__ import annotations

import shlex
from typing import Any

from sahara_es.edp.base import JobInvalid, JobNode, JobRun
from sahara_es.edp.launcher import (
    LaunchedJobEngine,
    check_args,
    check_configs,
    check_files,
    exports,
)
from sahara_es.infra.ssh import SSHPool

DASK = "Dask"


class DaskJobEngine(LaunchedJobEngine):
    job_types = (DASK,)

    def __init__(self, pool: SSHPool, nodes: list[JobNode], *, scheduler_address: str,
                 python: str) -> None:
        super().__init__(pool, nodes)
        self.scheduler_address = scheduler_address
        self.python = python

    def validate_job_execution(self, job: JobRun) -> None:
        super().validate_job_execution(job)
        if len(job.mains) != 1:
            raise JobInvalid(f"a Dask job has exactly one main script, not {len(job.mains)}")
        if not job.mains[0].name.endswith(".py"):
            raise JobInvalid(f"a Dask job's main is a Python script (.py), not"
                             f" {job.mains[0].name!r}")
        check_files(job)
        check_configs(job, set())
        if job.params:
            raise JobInvalid("Dask jobs take no params (use args)")
        check_args(job)
        self.job_node(job)

    def get_possible_job_config(self, job_type: str) -> dict[str, Any]:
        return {"configs": [], "args": [], "params": None}

    def job_node(self, job: JobRun) -> JobNode:
        node = self.node_with("scheduler")
        if node is None:
            raise JobInvalid("the cluster has no Dask scheduler node")
        return node

    def script(self, job: JobRun, node: JobNode) -> tuple[str, list[tuple[str, bytes]]]:
        env = {"DASK_SCHEDULER_ADDRESS": self.scheduler_address, "PYTHONUNBUFFERED": "1"}
        words = [self.python, f"./{job.mains[0].name}", *check_args(job)]
        return exports(env) + "exec " + " ".join(shlex.quote(w) for w in words) + "\n", []
