"""Shell jobs: a script run with ``sh`` (or its own ``#!`` interpreter) in the job's folder
on one node of the cluster (``edp.node``: a node's name or a process; by default the master,
the scheduler, or else the first node, as Sahara ran Shell jobs on the master); params are
exported as environment variables, args passed as the script's arguments, libs are files
beside it."""

from __future__ import annotations

import shlex
from typing import Any

from sahara_es.edp.base import JobInvalid, JobNode, JobRun
from sahara_es.edp.launcher import (
    LaunchedJobEngine,
    check_args,
    check_configs,
    check_files,
    check_params,
    config_hint,
    exports,
)

SHELL = "Shell"
CONFIGS = {"edp.node"}


class ShellJobEngine(LaunchedJobEngine):
    job_types = (SHELL,)

    def validate_job_execution(self, job: JobRun) -> None:
        super().validate_job_execution(job)
        if len(job.mains) != 1:
            raise JobInvalid(f"a Shell job has exactly one main script, not {len(job.mains)}")
        check_files(job)
        check_configs(job, CONFIGS)
        check_params(job)
        check_args(job)
        self.job_node(job)

    def get_possible_job_config(self, job_type: str) -> dict[str, Any]:
        return {"configs": [config_hint("edp.node", "The node to run on: a node's name or a"
                                        " process (default: the master)")],
                "args": [], "params": {}}

    def script(self, job: JobRun, node: JobNode) -> tuple[str, list[tuple[str, bytes]]]:
        main = job.mains[0]
        args = " ".join(shlex.quote(a) for a in check_args(job))
        path = shlex.quote(f"./{main.name}")
        if main.data.startswith(b"#!"):
            run = f"chmod 700 {path} && exec {path} {args}"
        else:
            run = f"exec sh {path} {args}"
        return exports(check_params(job)) + run + "\n", []
