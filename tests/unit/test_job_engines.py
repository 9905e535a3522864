"""The job engines without a cluster: validation, the commands they build (run here by a
local ``sh`` to show that no tenant string escapes its quotes), and the launcher's scripts
run against a local folder standing in for a node's home."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from sahara_es.edp.base import (
    DataSourceAccess,
    EngineState,
    JobFile,
    JobInvalid,
    JobNode,
    JobRun,
)
from sahara_es.edp.dask import DaskJobEngine
from sahara_es.edp.java import JavaJobEngine, conservative_java_options
from sahara_es.edp.launcher import Launcher, check_file_name, check_job_id, failure_line
from sahara_es.edp.shell import ShellJobEngine
from sahara_es.edp.spark import SparkJobEngine, check_spark_conf
from sahara_es.infra.ssh import CommandResult, Node, RemoteCommandFailed, SSHPool


class LocalPool:
    """An ``SSHPool`` stand-in running commands with the local ``sh`` in ``home`` (as the
    node's login shell would start), every node sharing that home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.commands: list[str] = []
        self.uploads: list[str] = []

    def run(self, node: Node, command: str, *, timeout: float = 300.0,
            env: Mapping[str, str] | None = None, secrets: Sequence[str] = (),
            check: bool = True, stdin: bytes | str | None = None) -> CommandResult:
        self.commands.append(command)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(["sh", "-c", command], cwd=self.home, input=data,
                              capture_output=True, timeout=timeout,
                              env={**os.environ, "HOME": str(self.home)})
        result = CommandResult(done.returncode, done.stdout.decode(), done.stderr.decode())
        if check and done.returncode:
            raise RemoteCommandFailed(node, command, done.returncode, result.stdout,
                                      result.stderr)
        return result

    def put_file(self, node: Node, path: str, content: bytes | str, mode: int = 0o644, *,
                 timeout: float = 60.0) -> None:
        self.uploads.append(path)
        target = self.home / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        target.chmod(mode)


NODE = Node("127.10.0.5", 22, "sahara-c-x", "ssh-ed25519 AAAA", "c1-master-1")
WORKER = Node("127.10.0.6", 22, "sahara-c-x", "ssh-ed25519 AAAA", "c1-worker-1")
NODES = [JobNode("c1-master-1", ["master"], NODE), JobNode("c1-worker-1", ["worker"], WORKER)]


def pool_of(home: Path) -> SSHPool:
    return cast(SSHPool, LocalPool(home))


def job(job_type: str, mains: list[JobFile] | None = None,
        libs: list[JobFile] | None = None, **fields: Any) -> JobRun:
    return JobRun(str(uuid.uuid4()), job_type, mains or [], libs or [], **fields)


def until_final(engine: ShellJobEngine, engine_job_id: str) -> Any:
    deadline = time.monotonic() + 20
    while True:
        state = engine.get_job_status(engine_job_id)
        if state.state.final:
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "x", "../etc", str(uuid.uuid4()).upper(),
                                 f"{uuid.uuid4()}/..", uuid.uuid4().hex])
def test_a_job_id_is_a_canonical_uuid(bad: str) -> None:
    with pytest.raises(ValueError):
        check_job_id(bad)
    good = str(uuid.uuid4())
    assert check_job_id(good) == good


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "-rf", "pid", "stdout", "launch.sh",
                                 "exit_code", "a b", "x;y", "", "é.py", "a" * 200, "a..b"])
def test_a_binary_name_is_a_plain_file_name_of_the_folder(bad: str) -> None:
    with pytest.raises(ValueError):
        check_file_name(bad)
    assert check_file_name("word_count-2.py") == "word_count-2.py"


# -- validation -----------------------------------------------------------------------------


def invalid(engine: Any, run: JobRun, *words: str) -> None:
    with pytest.raises(JobInvalid) as raised:
        engine.validate_job_execution(run)
    for word in words:
        assert word in str(raised.value)


def test_shell_validation(tmp_path: Path) -> None:
    engine = ShellJobEngine(pool_of(tmp_path), NODES)
    main = JobFile("main.sh", b"echo")
    invalid(engine, job("Spark", [main]), "runs Shell jobs, not Spark")
    invalid(engine, job("Shell"), "exactly one main")
    invalid(engine, job("Shell", [main, JobFile("b.sh", b"")]), "exactly one main")
    invalid(engine, job("Shell", [main], params={"A-B": "x"}), "A-B")
    invalid(engine, job("Shell", [main], params={"1A": "x"}), "environment variable")
    invalid(engine, job("Shell", [main], params={"A": {"x": 1}}), "string or a number")
    invalid(engine, job("Shell", [main], params={"A": "a\0b"}), "NUL")
    invalid(engine, job("Shell", [main], args=[1]), "arg 0")
    invalid(engine, job("Shell", [main], configs={"edp.node": "hdfs"}), "no node or process")
    invalid(engine, job("Shell", [main], configs={"edp.java.main_class": "X"}), "no config")
    invalid(engine, job("Shell", [main], [JobFile("main.sh", b"")]), "two of", "main.sh")
    invalid(engine, job("Shell", [JobFile("../x.sh", b"")]), "x.sh")
    invalid(engine, job("Shell", [JobFile("pid", b"")]), "keeps for itself")
    engine.validate_job_execution(job("Shell", [main], params={"A_1": "x", "N": 3},
                                      configs={"edp.node": "c1-worker-1"}, args=["$x"]))
    assert engine.get_possible_job_config("Shell")["params"] == {}


def test_java_validation() -> None:
    engine = JavaJobEngine(cast(SSHPool, None), NODES)
    jar = JobFile("app.jar", b"PK")
    main_class = {"edp.java.main_class": "org.example.Main"}
    invalid(engine, job("Java", libs=[jar]), "main class")
    invalid(engine, job("Java", [jar], configs=main_class), "no mains")
    invalid(engine, job("Java", configs=main_class), "jar among its libs")
    for bad in ("a;b", "Main class", "$(id)", "a..b", ".Main", ""):
        invalid(engine, job("Java", libs=[jar], configs={"edp.java.main_class": bad}),
                "Java class name")
    for options in ("-XX:OnError=sh", "-javaagent:/x.jar", "-cp /tmp", "@/etc/passwd",
                    "-Djava.class.path=/x", "-Dfoo=/etc/passwd", "-Dlog4j.configuration=x",
                    "Main", "-Dx.file=y", "-Xlog:gc"):
        invalid(engine, job("Java", libs=[jar], configs={
            **main_class, "edp.java.java_opts": options}), "edp.java.java_opts")
    invalid(engine, job("Java", libs=[jar], configs={**main_class, "spark.x": "1"}), "spark.x")
    invalid(engine, job("Java", libs=[jar], configs=main_class, params={"A": "1"}), "params")
    engine.validate_job_execution(job("Java", libs=[jar], configs={
        **main_class, "edp.java.java_opts": "-Xmx512m -Xss4m -Dgreeting=hi -Dverbose"}))
    names = [c["name"] for c in engine.get_possible_job_config("Java")["configs"]]
    assert names == ["edp.java.main_class", "edp.java.java_opts"]


def test_java_options_go_through_the_checker_given() -> None:
    seen = []

    def checker(text: str) -> None:
        seen.append(text)
        if "bad" in text:
            raise ValueError("not that one")

    engine = JavaJobEngine(cast(SSHPool, None), NODES, java_opts_check=checker)
    jar = JobFile("app.jar", b"PK")
    configs = {"edp.java.main_class": "Main", "edp.java.java_opts": "-XX:+UseSerialGC"}
    engine.validate_job_execution(job("Java", libs=[jar], configs=configs))
    assert seen == ["-XX:+UseSerialGC"]
    invalid(engine, job("Java", libs=[jar], configs={**configs, "edp.java.java_opts": "-Dbad"}),
            "not that one")
    with pytest.raises(JobInvalid):
        conservative_java_options("-XX:+UseSerialGC")


def spark_engine(**kwargs: Any) -> SparkJobEngine:
    return SparkJobEngine(cast(SSHPool, None), NODES, master_url="spark://127.10.0.5:7077",
                          spark_home="$HOME/spark/dist", python="/usr/bin/python3",
                          **kwargs)


def test_spark_validation() -> None:
    engine = spark_engine()
    py = JobFile("wc.py", b"")
    invalid(engine, job("Spark"), "exactly one main")
    invalid(engine, job("Spark", [JobFile("app.jar", b"")]), "main class")
    invalid(engine, job("Spark", [JobFile("app.txt", b"")]), "Python file (.py) or a jar")
    invalid(engine, job("Spark", [py], [JobFile("data.csv", b"")]), "libs are")
    invalid(engine, job("Spark", [py], params={"A": "1"}), "params")
    for name in ("spark.driver.extraJavaOptions", "spark.executor.extraClassPath",
                 "spark.hadoop.fs.s3a.impl", "spark.master", "spark.app.name",
                 "spark.jars.packages", "spark.eventLog.dir", "spark.plugins",
                 "spark.executorEnv.LD_PRELOAD", "spark.pyspark.python",
                 "spark.sql.warehouse.dir", "hadoop.tmp.dir", "spark"):
        invalid(engine, job("Spark", [py], configs={name: "x"}), name)
    invalid(engine, job("Spark", [py], configs={"spark.executor.memory": "1g /etc"}),
            "plain value")
    invalid(engine, job("Spark", [py], configs={"edp.spark.nope": "1"}), "no config")
    engine.validate_job_execution(job("Spark", [JobFile("app.jar", b"")],
                                      [JobFile("dep.jar", b""), JobFile("lib.py", b"")],
                                      configs={"edp.java.main_class": "org.x.Main",
                                               "spark.executor.memory": "1g",
                                               "spark.sql.shuffle.partitions": 4}))
    assert check_spark_conf("spark.cores.max", 2) == "2"
    # With a JVM option checker, extraJavaOptions are checked by it instead of refused.
    checked = spark_engine(java_opts_check=lambda text: None)
    checked.validate_job_execution(job("Spark", [py], configs={
        "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -Dx=1"}))


def test_dask_validation() -> None:
    engine = DaskJobEngine(cast(SSHPool, None), NODES, scheduler_address="tcp://a:8786",
                           python="/usr/bin/python3")
    invalid(engine, job("Dask"), "exactly one main")
    invalid(engine, job("Dask", [JobFile("x.sh", b"")]), "Python script")
    invalid(engine, job("Dask", [JobFile("x.py", b"")], params={"A": "1"}), "params")
    invalid(engine, job("Dask", [JobFile("x.py", b"")]), "no Dask scheduler")
    scheduled = DaskJobEngine(cast(SSHPool, None),
                              [JobNode("c1-s-1", ["scheduler"], NODE)],
                              scheduler_address="tcp://a:8786", python="/usr/bin/python3")
    scheduled.validate_job_execution(job("Dask", [JobFile("x.py", b"")], args=["1"]))


# -- commands -------------------------------------------------------------------------------

HOSTILE = ["it's", '"; touch pwned; "', "$(touch pwned)", "`touch pwned`", "a\nb", "*", "-e"]


def test_a_shell_command_passes_hostile_args_and_params_as_they_are(tmp_path: Path) -> None:
    engine = ShellJobEngine(pool_of(tmp_path), NODES)
    main = JobFile("main.sh", b'for a in "$@"; do printf "[%s]" "$a"; done; printf "{%s}" "$P"')
    run = job("Shell", [main], params={"P": HOSTILE[1] + HOSTILE[2]}, args=HOSTILE)
    script, own = engine.script(run, engine.job_node(run))
    assert own == []
    (tmp_path / "main.sh").write_bytes(main.data)
    out = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout == "".join(f"[{a}]" for a in HOSTILE) + "{" + HOSTILE[1] + HOSTILE[2] + "}"
    assert not (tmp_path / "pwned").exists()


def test_a_shebang_script_runs_with_its_interpreter(tmp_path: Path) -> None:
    engine = ShellJobEngine(pool_of(tmp_path), NODES)
    run = job("Shell", [JobFile("main.py", b"#!/usr/bin/env python3\nprint('py')\n")])
    script, _ = engine.script(run, engine.job_node(run))
    assert "exec ./main.py" in script


def test_the_java_command(tmp_path: Path) -> None:
    engine = JavaJobEngine(pool_of(tmp_path), NODES, java="/opt/jdk/bin/java")
    run = job("Java", libs=[JobFile("app.jar", b""), JobFile("dep.jar", b"")],
              configs={"edp.java.main_class": "org.x.Main", "edp.java.java_opts": "-Xmx1g"},
              args=["$(id)"])
    script, _ = engine.script(run, engine.job_node(run))
    assert shlex.split(script) == ["exec", "/opt/jdk/bin/java", "-Xmx1g", "-cp",
                                   "app.jar:dep.jar", "org.x.Main", "$(id)"]


def test_the_spark_submit_command() -> None:
    engine = spark_engine(extra_jars=["/opt/extra.jar"])
    run = job("Spark", [JobFile("app.jar", b"")],
              [JobFile("dep.jar", b""), JobFile("lib.py", b""), JobFile("pkg.zip", b"")],
              configs={"edp.java.main_class": "org.x.Main", "spark.executor.memory": "1g"},
              args=["in", "$(id)"])
    node = engine.job_node(run)
    assert node.name == "c1-master-1"
    script, own = engine.script(run, node)
    lines = script.splitlines()
    assert "export SPARK_LOCAL_IP=127.10.0.5" in lines
    assert "export PYSPARK_PYTHON=/usr/bin/python3" in lines
    assert 'export SPARK_HOME="$HOME"/spark/dist' in lines
    words = shlex.split(lines[-1])
    assert words[:2] == ["exec", "$SPARK_HOME/bin/spark-submit"]
    assert words[2:] == ["--master", "spark://127.10.0.5:7077", "--deploy-mode", "client",
                         "--name", f"sahara-es-{run.job_id}", "--properties-file",
                         "job.properties", "--class", "org.x.Main", "--py-files",
                         "lib.py,pkg.zip", "--jars", "dep.jar,/opt/extra.jar", "app.jar",
                         "in", "$(id)"]
    [(name, properties)] = own
    assert name == "job.properties"
    assert properties.decode().splitlines() == [
        "spark.executor.memory=1g", "spark.pyspark.python=/usr/bin/python3",
        "spark.pyspark.driver.python=/usr/bin/python3"]


def test_object_storage_args_are_rewritten_to_s3a(monkeypatch: pytest.MonkeyPatch) -> None:
    from sahara_es.edp import storage

    def settings(source: DataSourceAccess, policy: Any) -> tuple[str, dict[str, str]]:
        assert policy == "policy"
        bucket = source.url.split("/")[2]
        return (f"s3a://{bucket}/{source.url.split('/', 3)[3]}",
                {f"spark.hadoop.fs.s3a.bucket.{bucket}.secret.key":
                 source.credentials["secretkey"]})

    monkeypatch.setattr(storage, "s3a_settings", settings)
    monkeypatch.setattr(storage, "s3a_jars", lambda: [Path("/jars/hadoop-aws.jar")])
    engine = spark_engine(storage_policy="policy")
    source = DataSourceAccess("swift://c/in", "swift", {"secretkey": "S1"})
    target = DataSourceAccess("s3://b/out", "s3", {"secretkey": "S2"})
    run = job("Spark", [JobFile("wc.py", b"")], input=source, output=target,
              args=["swift://c/in/*.txt", "s3://b/out", "s3://other/x", "--swift://c/in"])
    script, own = engine.script(run, engine.job_node(run))
    words = shlex.split(script.splitlines()[-1])
    assert words[-4:] == ["s3a://c/in/*.txt", "s3a://b/out", "s3://other/x", "--swift://c/in"]
    assert words[words.index("--jars") + 1] == "/jars/hadoop-aws.jar"
    properties = own[0][1].decode()
    assert "spark.hadoop.fs.s3a.bucket.c.secret.key=S1" in properties
    assert "S1" not in script and "S2" not in script  # secrets in the file only, never argv


def test_possible_configs_have_sahara_shape() -> None:
    for engine, job_type in ((spark_engine(), "Spark"),
                             (ShellJobEngine(cast(SSHPool, None), NODES), "Shell"),
                             (JavaJobEngine(cast(SSHPool, None), NODES), "Java")):
        hints = engine.get_possible_job_config(job_type)
        assert set(hints) == {"configs", "args", "params"}
        assert all({"name", "value", "description"} <= set(c) for c in hints["configs"])


# -- the launcher on a local folder ---------------------------------------------------------


def test_a_job_launched_in_a_local_folder(tmp_path: Path) -> None:
    engine = ShellJobEngine(pool_of(tmp_path), NODES)
    run = job("Shell", [JobFile("main.sh", b'echo out; echo "err $1" >&2; exit 4\n')],
              args=["last words"])
    engine_job_id = engine.run_job(run)
    assert engine_job_id == f"c1-master-1/{run.job_id}"
    state = until_final(engine, engine_job_id)
    assert (state.state, state.exit_code) == (EngineState.FAILED, 4)
    assert state.description == "exit code 4: err last words"
    folder = tmp_path / "edp" / run.job_id
    assert sorted(p.name for p in folder.iterdir()) == [
        "exit_code", "launch.sh", "main.sh", "pid", "secrets.json", "start", "stderr",
        "stdout"]
    assert engine.get_job_logs(engine_job_id, 3).stdout == "ut\n"


def test_concurrent_launches_start_one_run(tmp_path: Path) -> None:
    pool = pool_of(tmp_path)
    run = job("Shell", [JobFile("main.sh", b"echo x >> ../runs; sleep 0.5\n")])
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(
        ShellJobEngine(pool, NODES).run_job(run))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and len(set(answers)) == 1
    engine = ShellJobEngine(pool, NODES)
    assert until_final(engine, answers[0]).state is EngineState.SUCCEEDED
    assert (tmp_path / "edp" / "runs").read_text() == "x\n"
    assert list((tmp_path / "edp" / ".staging").iterdir()) == []
    launched = Launcher(pool).launch(NODE, run.job_id, "echo again >> ../runs\n")
    assert not launched.started and launched.pid is not None


def test_kill_a_vanished_job_and_a_reused_pid(tmp_path: Path) -> None:
    engine = ShellJobEngine(pool_of(tmp_path), NODES)
    runs = [job("Shell", [JobFile("main.sh", b"sleep 60 & sleep 60\n")]) for _ in range(3)]
    ids = [engine.run_job(run) for run in runs]
    folders = [tmp_path / "edp" / run.job_id for run in runs]
    pids = [int((f / "pid").read_text()) for f in folders]

    os.killpg(pids[0], signal.SIGKILL)
    state = until_final(engine, ids[0])
    assert state.state is EngineState.FAILED and "without an exit code" in state.description

    # A recorded start time that is not the process's: the pid is someone else's now.
    (folders[1] / "start").write_text("1\n")
    assert engine.get_job_status(ids[1]).state is EngineState.FAILED
    assert engine.cancel_job(ids[1], 5).state is EngineState.FAILED  # not signalled
    os.kill(pids[1], 0)  # still alive: it was not ours to kill
    os.killpg(pids[1], signal.SIGKILL)

    started = time.monotonic()
    assert engine.cancel_job(ids[2], 10).state is EngineState.KILLED
    assert time.monotonic() - started < 8
    assert (folders[2] / "killed").exists()
    assert engine.get_job_status(ids[2]).state is EngineState.KILLED
    assert not any(group_of(pid) == pids[2] for pid in os.listdir("/proc") if pid.isdigit())


def group_of(pid: str) -> int | None:
    """A live process's group (None for a zombie or a process gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[2])


def test_an_engine_job_id_is_checked(tmp_path: Path) -> None:
    engine = ShellJobEngine(pool_of(tmp_path), NODES)
    with pytest.raises(JobInvalid):
        engine.get_job_status("c1-master-1/../../etc")
    gone = engine.get_job_status(f"c1-gone-1/{uuid.uuid4()}")
    assert gone.state is EngineState.FAILED and "no longer in the cluster" in gone.description
    missing = engine.get_job_status(f"c1-master-1/{uuid.uuid4()}")
    assert missing.state is EngineState.FAILED and "folder is gone" in missing.description


@pytest.mark.parametrize(("stderr", "reason"), [
    ("Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom\n"
     "26/12/02 INFO SparkContext: Successfully stopped SparkContext\n", "ValueError: boom"),
    ("java.io.IOException: could only be written to 0 nodes\n\tat org.apache.Foo\n"
     "INFO ShutdownHookManager: Deleting directory /tmp/x\n",
     "java.io.IOException: could only be written to 0 nodes"),
    ("broken input\n", "broken input"),
    ("", ""),
])
def test_a_failed_job_s_reason_is_the_line_naming_its_error(stderr: str, reason: str) -> None:
    assert failure_line(stderr) == reason
