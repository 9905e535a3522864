"""Java jobs: ``java [edp.java.java_opts] -cp <libs> <edp.java.main_class> args`` in the
job's folder on one node (``edp.node``, by default the master). As in Sahara, a Java job's
jars are its libs (no mains) and its main class is required."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

from sahara_es.edp.base import JobInvalid, JobNode, JobRun
from sahara_es.edp.launcher import (
    LaunchedJobEngine,
    check_args,
    check_configs,
    check_files,
    check_text,
    config_hint,
)
from sahara_es.infra.ssh import SSHPool

JAVA = "Java"
MAIN_CLASS = "edp.java.main_class"
JAVA_OPTS = "edp.java.java_opts"
CONFIGS = {MAIN_CLASS, JAVA_OPTS, "edp.node"}

CLASS_NAME = re.compile(r"(?:[A-Za-z_$][A-Za-z0-9_$]*\.)*[A-Za-z_$][A-Za-z0-9_$]*")

_SIZE_OPTION = re.compile(r"-X(?:mx|ms|ss|mn)[1-9][0-9]{0,6}[kKmMgG]?")
_PROPERTY_OPTION = re.compile(r"-D(?P<name>[A-Za-z][A-Za-z0-9_.\-]{0,127})"
                              r"(?:=(?P<value>[A-Za-z0-9_.,:+\-]{0,256}))?")
_DENIED_PREFIXES = ("java.", "javax.", "jdk.", "sun.", "com.sun.", "log4j", "logback.",
                    "org.apache.logging.", "jna.", "jmx.", "spark.")
_DENIED_WORDS = ("file", "path", "dir", "home", "class", "loader", "factory", "conf",
                 "url", "uri", "jar", "library", "agent", "plugin", "listener", "provider",
                 "policy", "script", "command", "cmd", "options", "opts", "manager")


def conservative_java_options(text: str) -> None:
    """``JobInvalid`` unless every option is a heap or stack size (``-Xmx512m``) or a system
    property whose name names no file, class, URL or option of another program and whose
    value is a plain word (no ``/``): far narrower than ``plugins.jvm.check_options``, which
    a plugin may hand to the engine instead."""
    for token in text.split():
        if _SIZE_OPTION.fullmatch(token):
            continue
        found = _PROPERTY_OPTION.fullmatch(token)
        if found:
            name = found.group("name").lower()
            if not name.startswith(_DENIED_PREFIXES) and not any(
                    segment.endswith(_DENIED_WORDS) for segment in name.split(".")):
                continue
        raise JobInvalid(f"{JAVA_OPTS}: {token[:80]!r} is not an option a job may set (only"
                         " -Xmx/-Xms/-Xss/-Xmn sizes and plain -Dname=value properties)")


def check_java_options(text: object, checker: Callable[[str], object] | None) -> list[str]:
    value = check_text(text, JAVA_OPTS)
    if any(c in value for c in "\n\r"):
        raise JobInvalid(f"{JAVA_OPTS} holds a newline")
    if checker is None:
        conservative_java_options(value)
    else:
        try:
            checker(value)
        except JobInvalid:
            raise
        except Exception as error:  # the checker's own error type (jvm.UnsafeJvmOption)
            raise JobInvalid(f"{JAVA_OPTS}: {error}") from None
    return value.split()


def check_main_class(value: object) -> str:
    if not isinstance(value, str) or not CLASS_NAME.fullmatch(value) or len(value) > 512:
        raise JobInvalid(f"{MAIN_CLASS} must be a Java class name (such as org.example.Main),"
                         f" not {str(value)[:80]!r}")
    return value


class JavaJobEngine(LaunchedJobEngine):
    job_types = (JAVA,)

    def __init__(self, pool: SSHPool, nodes: list[JobNode], java: str = "java", *,
                 java_opts_check: Callable[[str], object] | None = None) -> None:
        super().__init__(pool, nodes)
        self.java = java
        self.java_opts_check = java_opts_check

    def validate_job_execution(self, job: JobRun) -> None:
        super().validate_job_execution(job)
        if job.mains:
            raise JobInvalid("a Java job has no mains: its jars are its libs")
        if not job.libs:
            raise JobInvalid("a Java job needs its jar among its libs")
        check_files(job)
        check_configs(job, CONFIGS)
        if MAIN_CLASS not in job.configs:
            raise JobInvalid(f"a Java job needs its main class ({MAIN_CLASS})")
        check_main_class(job.configs[MAIN_CLASS])
        check_java_options(job.configs.get(JAVA_OPTS, ""), self.java_opts_check)
        for name in job.configs:
            if not name.startswith("edp."):
                raise JobInvalid(f"a Java job takes no config {name!r} (only"
                                 f" {', '.join(sorted(CONFIGS))})")
        if job.params:
            raise JobInvalid("Java jobs take no params (use args or -D properties)")
        check_args(job)
        self.job_node(job)

    def get_possible_job_config(self, job_type: str) -> dict[str, Any]:
        return {"configs": [config_hint(MAIN_CLASS, "The class whose main() runs"),
                            config_hint(JAVA_OPTS, "JVM options: heap sizes and -D"
                                        " properties")],
                "args": [], "params": None}

    def script(self, job: JobRun, node: JobNode) -> tuple[str, list[tuple[str, bytes]]]:
        options = check_java_options(job.configs.get(JAVA_OPTS, ""), self.java_opts_check)
        classpath = ":".join(f.name for f in job.libs)
        words = [self.java, *options, "-cp", classpath,
                 check_main_class(job.configs[MAIN_CLASS]), *check_args(job)]
        return "exec " + " ".join(shlex.quote(w) for w in words) + "\n", []
