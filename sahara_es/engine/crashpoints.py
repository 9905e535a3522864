"""Crash points: where tests kill a process between two writes, to prove nothing is lost.

``SAHARA_ES_CRASH_AT=NAME[:SUBJECT][,...]`` makes a process kill itself with SIGKILL when it
reaches a named point (for ``SUBJECT`` only, a workflow id say, if one is given): no cleanup,
no ``finally``, as ``kill -9`` would. The variable is read at each point, so setting it is the
only way to arm one; nothing sets it but the tests (``tests/integration/test_handoff.py``).
"""

from __future__ import annotations

import os
import signal

ENV = "SAHARA_ES_CRASH_AT"

WORKFLOW_RECORDED = "workflow-recorded"
"""``start_workflow``: after the ``WorkflowStarted`` append, before the lease exists."""
CLUSTER_RECORDED = "cluster-recorded"
"""The API: after a cluster's creation is appended, before anything else (the answer)."""


def crash_point(name: str, subject: str = "") -> None:
    armed = os.environ.get(ENV)
    if armed and ({name, f"{name}:{subject}"} & set(armed.split(","))):
        os.kill(os.getpid(), signal.SIGKILL)
