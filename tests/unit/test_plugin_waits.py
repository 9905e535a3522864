"""Plugin waits and status reads as a specification: inside a node step (``command_limits``,
as ``NodeStep`` runs a plugin task) a plugin's polling loop and its HTTP reads of a node's
status page end by the step's deadline, whatever the tenant's own timeout, and stop at once
when the cluster's work is cancelled; a status page is read within an overall deadline, at
most ``STATUS_PAGE_LIMIT`` bytes, and a redirect is never followed. Plugins refuse config
targets they do not have, and re-check a stored cluster's configs when they plan its
configure, start or scale."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sahara_es.engine import PermanentFailure
from sahara_es.infra.ssh import command_limits
from sahara_es.plugins import dask, spark
from sahara_es.plugins.base import ClusterInfo, NodeInfo, PluginInvalid
from sahara_es.plugins.dask import DaskPlugin
from sahara_es.plugins.fake import FakePlugin
from sahara_es.plugins.spark import DaemonNotReady, MasterUnreachable, SparkPlugin
from sahara_es.plugins.waits import STATUS_PAGE_LIMIT, WaitStopped, WaitTimedOut, pause

GENEROUS = 5.0
"""An upper bound for "promptly" that a loaded test machine still meets."""


def never_ready() -> None:
    raise DaemonNotReady("not yet")


def stop_after(seconds: float) -> threading.Event:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    return stop


# -- polling loops ---------------------------------------------------------------------------


def test_wait_until_ends_at_the_step_limit_not_the_tenants_timeout() -> None:
    started = time.monotonic()
    with command_limits(timeout=0.5), pytest.raises(WaitTimedOut) as cut:
        spark.wait_until(never_ready, 60, "Spark master on n1 not ready")
    assert time.monotonic() - started < GENEROUS
    assert "Spark master on n1 not ready timed out after" in str(cut.value)
    assert "step's time limit" in str(cut.value) and "not yet" in str(cut.value)
    assert isinstance(cut.value, PermanentFailure)  # no retry within a step that is over


def test_wait_until_stops_when_the_work_is_cancelled() -> None:
    started = time.monotonic()
    with command_limits(timeout=600, stop=stop_after(0.3)), \
            pytest.raises(WaitStopped, match="was stopped: the cluster's work was cancelled"):
        spark.wait_until(never_ready, 60, "Spark worker on n2 not drained")
    assert time.monotonic() - started < GENEROUS


def test_wait_until_with_the_cancel_already_set_does_not_even_check() -> None:
    stop = threading.Event()
    stop.set()
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        never_ready()

    with command_limits(timeout=600, stop=stop), pytest.raises(WaitStopped):
        spark.wait_until(check, 60, "Spark master not ready")
    assert calls == []


def test_wait_until_keeps_its_own_timeout_when_it_is_the_shorter() -> None:
    with command_limits(timeout=600), pytest.raises(DaemonNotReady, match=r"within 0\.5 s"):
        spark.wait_until(never_ready, 0.5, "Spark master not ready")
    with pytest.raises(DaemonNotReady, match=r"within 0\.3 s"):  # outside any step
        spark.wait_until(never_ready, 0.3, "Spark master not ready")


def test_wait_until_returns_the_checks_value() -> None:
    answers = iter([MasterUnreachable("down"), DaemonNotReady("starting"), "ALIVE"])

    def check() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with command_limits(timeout=30):
        assert spark.wait_until(check, 60, "Spark master not ready") == "ALIVE"


def test_a_pause_wakes_on_the_cancel() -> None:
    started = time.monotonic()
    with command_limits(stop=stop_after(0.2)), pytest.raises(WaitStopped):
        pause(30, "checking the Dask scheduler")
    assert time.monotonic() - started < GENEROUS
    with command_limits(timeout=0.2):
        pause(30, "checking the Dask scheduler")  # ends with the step, quietly
    assert time.monotonic() - started < 2 * GENEROUS


# -- a node's status page ------------------------------------------------------------------------


Handler = Callable[[socket.socket], None]


@pytest.fixture()
def server() -> Iterator[Callable[[Handler], int]]:
    """Serve each connection on 127.0.0.1 with a handler; its port."""
    sockets: list[socket.socket] = []

    def serve(handler: Handler) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        sockets.append(listener)

        def accept() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                sockets.append(connection)
                threading.Thread(target=handle, args=(connection,), daemon=True).start()

        def handle(connection: socket.socket) -> None:
            try:
                connection.recv(65536)
                handler(connection)
            except OSError:
                pass
            finally:
                connection.close()

        threading.Thread(target=accept, daemon=True).start()
        port: int = listener.getsockname()[1]
        return port

    yield serve
    for sock in sockets:
        sock.close()


def answer(body: bytes, *, status: str = "200 OK", headers: str = "") -> Handler:
    def handler(connection: socket.socket) -> None:
        connection.sendall(f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
                           f"{headers}\r\n".encode() + body)
    return handler


def drip(head: bytes, every: float = 0.5) -> Handler:
    """A status line, then a byte every ``every`` seconds, for ever."""
    def handler(connection: socket.socket) -> None:
        connection.sendall(head)
        while True:
            connection.sendall(b" ")
            time.sleep(every)
    return handler


ALIVE = {"status": "ALIVE", "url": "spark://m:7077", "workers": []}


def test_a_status_page_is_read(server: Callable[[Handler], int]) -> None:
    port = server(answer(json.dumps(ALIVE).encode()))
    assert spark.master_status("127.0.0.1", port) == ALIVE


def test_a_slow_drip_body_fails_within_the_overall_deadline(
        server: Callable[[Handler], int]) -> None:
    port = server(drip(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n'
                       b'{"workers": ['))
    started = time.monotonic()
    with pytest.raises(MasterUnreachable, match=r"no complete answer within 1\.5 s"):
        spark.master_status("127.0.0.1", port, timeout=1.5)
    assert time.monotonic() - started < GENEROUS


def test_slow_drip_headers_fail_within_the_overall_deadline(
        server: Callable[[Handler], int]) -> None:
    port = server(drip(b"HTTP/1.0 200 OK\r\nX-Slow: "))
    started = time.monotonic()
    with pytest.raises(MasterUnreachable, match="no complete answer"):
        spark.master_status("127.0.0.1", port, timeout=1.5)
    assert time.monotonic() - started < GENEROUS


def test_a_slow_drip_ends_with_the_step_and_on_the_cancel(
        server: Callable[[Handler], int]) -> None:
    port = server(drip(b'HTTP/1.0 200 OK\r\n\r\n{"workers": ['))
    started = time.monotonic()
    with command_limits(timeout=1.0), pytest.raises(MasterUnreachable):
        spark.master_status("127.0.0.1", port, timeout=60)
    assert time.monotonic() - started < GENEROUS

    started = time.monotonic()
    with command_limits(timeout=600, stop=stop_after(0.5)), \
            pytest.raises(WaitStopped, match="was stopped: the cluster's work was cancelled"):
        spark.master_status("127.0.0.1", port, timeout=60)
    assert time.monotonic() - started < GENEROUS


def test_a_silent_server_is_left_on_the_cancel(server: Callable[[Handler], int]) -> None:
    port = server(lambda connection: time.sleep(60))
    started = time.monotonic()
    with command_limits(stop=stop_after(0.3)), pytest.raises(WaitStopped):
        spark.master_status("127.0.0.1", port, timeout=60)
    assert time.monotonic() - started < GENEROUS


@pytest.mark.parametrize("announced", [True, False])
def test_an_oversized_status_page_fails(server: Callable[[Handler], int],
                                        announced: bool) -> None:
    body = b'{"workers": [' + b" " * (2 * STATUS_PAGE_LIMIT) + b"]}"
    headers = f"Content-Length: {len(body)}\r\n" if announced else ""
    port = server(answer(body, headers=headers))
    with pytest.raises(MasterUnreachable, match=f"more than the {STATUS_PAGE_LIMIT}"):
        spark.master_status("127.0.0.1", port)


def test_a_redirect_is_not_followed(server: Callable[[Handler], int]) -> None:
    followed: list[bool] = []

    def elsewhere(connection: socket.socket) -> None:
        followed.append(True)
        answer(json.dumps(ALIVE).encode())(connection)

    target = server(elsewhere)
    port = server(answer(b"", status="302 Found",
                         headers=f"Location: http://127.0.0.1:{target}/json/\r\n"))
    with pytest.raises(MasterUnreachable, match=r"302 .*redirects are not followed"):
        spark.master_status("127.0.0.1", port)
    time.sleep(0.2)
    assert followed == []


@pytest.mark.parametrize("page", [b"[1, 2]", b"not json", b"HTTP/1.0 nonsense"])
def test_what_is_not_a_json_object_is_no_master(server: Callable[[Handler], int],
                                                page: bytes) -> None:
    port = server(answer(page))
    with pytest.raises(MasterUnreachable):
        spark.master_status("127.0.0.1", port)


def test_garbage_instead_of_http_is_no_master(server: Callable[[Handler], int]) -> None:
    def garbage(connection: socket.socket) -> None:
        connection.sendall(b"SSH-2.0-OpenSSH\r\n")

    port = server(garbage)
    with pytest.raises(MasterUnreachable, match="no valid HTTP"):
        spark.master_status("127.0.0.1", port)


def dask_cluster(port: int, configs: dict[str, Any] | None = None) -> ClusterInfo:
    node = NodeInfo("d-scheduler-1", "scheduler", ["scheduler"], "127.0.0.1", 22, "u", "k")
    return ClusterInfo("c-d", "d", DaskPlugin().versions()[0],
                       configs if configs is not None else {"Dask": {"Dashboard port": port}},
                       [node])


def test_the_dask_dashboard_is_read_the_same_way(server: Callable[[Handler], int]) -> None:
    listed = {"workers": [{"name": "w1", "address": "tcp://127.0.0.1:4000"}]}
    assert dask.scheduler_workers(dask_cluster(server(answer(json.dumps(listed).encode()))
                                               )) == {"w1": "tcp://127.0.0.1:4000"}
    big = answer(b'{"workers": [' + b" " * (2 * STATUS_PAGE_LIMIT) + b"]}")
    assert dask.scheduler_workers(dask_cluster(server(big))) is None
    moved = answer(b"", status="301 Moved", headers="Location: http://127.0.0.1:1/\r\n")
    assert dask.scheduler_workers(dask_cluster(server(moved))) is None
    slow = dask_cluster(server(drip(b'HTTP/1.0 200 OK\r\n\r\n{"workers": [')))
    started = time.monotonic()
    assert dask.scheduler_workers(slow, timeout=1.0) is None
    assert not dask.scheduler_listening(slow, timeout=1.0)
    assert time.monotonic() - started < 2 * GENEROUS
    with command_limits(stop=stop_after(0.3)), pytest.raises(WaitStopped):
        dask.scheduler_workers(slow, timeout=60)


# -- config targets and stored configs ---------------------------------------------------------


@pytest.mark.parametrize(("plugin", "configs"), [
    (SparkPlugin(), {"YARN": {"dfs.replication": 1}}),
    (SparkPlugin(), {"general": {}}),
    (DaskPlugin(), {"Spark": {"Worker memory": "1g"}}),
])
def test_config_targets_a_plugin_does_not_have_are_refused(plugin: Any,
                                                           configs: dict[str, Any]) -> None:
    version = plugin.versions()[0]
    target = next(iter(configs))
    with pytest.raises(PluginInvalid, match=f"has no config target '{target}'"):
        plugin.validate_configs(version, configs)
    group = {"name": "workers", "node_processes": ["worker"], "count": 1,
             "node_configs": configs}
    with pytest.raises(PluginInvalid, match=r"node_configs.*has no config target"):
        plugin.validate_configs(version, None, [group])


def test_a_plugin_without_declared_configs_takes_any_target() -> None:
    FakePlugin().validate_configs("0.1", {"Fake": {"fail_start": "namenode"}, "HDFS": {"x": 1}})


def spark_cluster(configs: dict[str, Any]) -> ClusterInfo:
    master = NodeInfo("s-master-1", "master", ["master", "worker"], "127.0.0.1", 22, "u", "k")
    return ClusterInfo("c-s", "s", SparkPlugin().versions()[0], configs, [master])


STORED_SPARK = [
    {"Spark": {"Spark home": "/tmp/not-a-distribution"}},
    {"Spark": {"Worker memory": "512m; touch /tmp/x"}},
    {"Spark": {"Daemon Java options": "-XX:OnError=touch${IFS}/tmp/pwned"}},
    {"YARN": {"dfs.replication": 1}},
]


@pytest.mark.parametrize("configs", STORED_SPARK)
def test_a_stored_spark_cluster_with_refused_configs_is_not_configured(
        configs: dict[str, Any]) -> None:
    plugin, cluster = SparkPlugin(), spark_cluster(configs)
    for plan in (plugin.configure, plugin.start, lambda c: plugin.scale(c, c.nodes)):
        with pytest.raises(PermanentFailure, match="the configs of cluster s are refused"):
            plan(cluster)
    plugin.decommission(cluster, cluster.nodes)  # shrinking and deleting go on
    plugin.on_terminate(cluster)


STORED_DASK = [
    {"Dask": {"Python": "/usr/bin/python-of-the-tenant"}},
    {"Dask": {"Worker memory": "1GB --preload evil"}},
    {"Dask": {"Worker threads": 0}},
    {"Spark": {}},
]


@pytest.mark.parametrize("configs", STORED_DASK)
def test_a_stored_dask_cluster_with_refused_configs_is_not_configured(
        configs: dict[str, Any]) -> None:
    plugin = DaskPlugin()
    cluster = dask_cluster(8787, configs)
    for plan in (plugin.configure, plugin.start, lambda c: plugin.scale(c, c.nodes)):
        with pytest.raises(PermanentFailure, match="the configs of cluster d are refused"):
            plan(cluster)
    plugin.on_terminate(cluster)


def test_accepted_stored_configs_are_planned() -> None:
    assert SparkPlugin().configure(spark_cluster({"Spark": {"Worker memory": "1g"}})).specs
    assert DaskPlugin().configure(dask_cluster(8787, {"Dask": {"Python": sys.executable}})
                                  ).specs


def test_the_timeouts_say_the_step_limit_caps_them() -> None:
    plugin = SparkPlugin()
    described = {c.name: c.description for c in plugin.configs(plugin.versions()[0])}
    assert "step time limit" in described["Start timeout"]
    assert "step time limit" in described["Decommission timeout"]
