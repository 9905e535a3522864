"""The Spark plugin's HDFS (plugins/hdfs.py) without nodes: the Hadoop configuration files a
node gets, the topology and config checks, the flows' shape, ports and the Hadoop home."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from sahara_es.engine import PermanentFailure
from sahara_es.plugins import hdfs
from sahara_es.plugins.base import ClusterInfo, NodeInfo, PluginInvalid
from sahara_es.plugins.catalog import PluginUnavailable
from sahara_es.plugins.spark import SparkPlugin, spark_env


def node(name: str, address: str, *processes: str) -> NodeInfo:
    return NodeInfo(name=name, node_group="g", processes=list(processes), address=address,
                    ssh_port=2222, username="sahara-c-0123", host_key="", home="/h")


MASTER = node("m", "127.10.0.1", "master", "namenode")
W1 = node("w1", "127.10.0.2", "worker", "datanode")
W2 = node("w2", "127.10.1.3", "worker", "datanode")


def cluster(*nodes: NodeInfo, configs: dict[str, Any] | None = None) -> ClusterInfo:
    return ClusterInfo("c-1", "c", "4.0", configs or {}, list(nodes))


def properties(text: str) -> dict[str, str]:
    root = ET.fromstring(text)
    return {p.findtext("name") or "": p.findtext("value") or ""
            for p in root.iter("property")}


@pytest.fixture
def hadoop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hadoop home as tools/hadoop-jars makes it (empty jars will do here)."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "hadoop-hdfs-3.5.0.jar").write_bytes(b"")
    (tmp_path / "webapps" / "hdfs").mkdir(parents=True)
    monkeypatch.setenv(hdfs.HOME_VARIABLE, str(tmp_path))
    return tmp_path


def groups(*spec: tuple[list[str], int]) -> list[dict[str, Any]]:
    return [{"name": f"g{i}", "node_processes": processes, "count": count}
            for i, (processes, count) in enumerate(spec)]


# -- configuration files ------------------------------------------------------------------------

def test_core_site_names_the_namenode_and_keeps_temporary_files_in_the_home() -> None:
    core = properties(hdfs.core_site(cluster(MASTER, W1), "/home/n1"))
    assert core == {"fs.defaultFS": "hdfs://127.10.0.1:8020",
                    "hadoop.tmp.dir": "/home/n1/spark/hdfs/tmp"}
    assert hdfs.namenode_url(cluster(MASTER, W1)) == "hdfs://127.10.0.1:8020"
    assert hdfs.namenode_url(cluster(node("m", "127.10.0.1", "master"))) is None
    assert hdfs.hdfs_home(cluster(MASTER, W1)) == "/user/sahara-c-0123"


def test_hdfs_site_binds_the_node_s_own_address_and_names_the_datanode_by_it() -> None:
    site = properties(hdfs.hdfs_site(cluster(MASTER, W1, W2), W1, "/home/w1"))
    port = hdfs.datanode_port(W1)
    assert site["dfs.namenode.name.dir"] == "file:///home/w1/spark/hdfs/name"
    assert site["dfs.datanode.data.dir"] == "file:///home/w1/spark/hdfs/data"
    assert site["dfs.namenode.rpc-address"] == "127.10.0.1:8020"
    assert site["dfs.namenode.http-address"] == "127.10.0.1:9870"
    assert site["dfs.datanode.address"] == f"127.10.0.2:{port}"
    assert site["dfs.datanode.http.address"] == "127.10.0.2:9864"
    assert site["dfs.datanode.ipc.address"] == "127.10.0.2:9867"
    assert site["dfs.datanode.hostname"] == "127.10.0.2"
    assert site["dfs.client.use.datanode.hostname"] == "true"
    assert site["dfs.datanode.use.datanode.hostname"] == "true"
    assert site["dfs.namenode.datanode.registration.ip-hostname-check"] == "false"
    assert site["dfs.replication"] == "2"
    assert "dfs.blocksize" not in site


@pytest.mark.parametrize(("datanodes", "replication"), [(0, 1), (1, 1), (2, 2), (3, 3), (5, 3)])
def test_replication_is_at_most_three_and_at_most_the_datanodes(datanodes: int,
                                                                replication: int) -> None:
    nodes = [node(f"w{i}", f"127.10.0.{i + 2}", "datanode") for i in range(datanodes)]
    assert hdfs.replication(cluster(MASTER, *nodes)) == replication
    given = cluster(MASTER, *nodes, configs={"HDFS": {"dfs.replication": 1,
                                                      "dfs.blocksize": 1048576}})
    site = properties(hdfs.hdfs_site(given, MASTER, "/h"))
    assert site["dfs.replication"] == "1" and site["dfs.blocksize"] == "1048576"


def test_values_are_escaped_in_the_xml() -> None:
    text = hdfs.core_site(cluster(MASTER), "/home/a&b<c>")
    assert properties(text)["hadoop.tmp.dir"] == "/home/a&b<c>/spark/hdfs/tmp"


def test_datanodes_of_a_cluster_get_distinct_transfer_ports() -> None:
    ports = {hdfs.datanode_port(node(f"w{i}", f"127.10.{i // 200}.{i % 200 + 2}", "datanode"))
             for i in range(600)}
    assert len(ports) == 600
    assert all(10000 <= p < 30000 for p in ports)
    clash = cluster(MASTER, node("a", "127.10.0.2", "datanode"),
                    node("b", "127.10.78.34", "datanode"))  # 20000 apart in the low 16 bits
    with pytest.raises(PermanentFailure, match="would both use transfer port"):
        hdfs.check_datanode_ports(clash)


def test_spark_env_points_spark_at_the_cluster_s_hdfs_only_when_there_is_one() -> None:
    env = spark_env(cluster(MASTER, W1), W1)
    assert 'HADOOP_CONF_DIR="$HOME/spark/hdfs/conf"' in env
    assert "-Dspark.hadoop.dfs.client.use.datanode.hostname=true" in env
    plain = cluster(node("m", "127.10.0.1", "master"), node("w", "127.10.0.2", "worker"))
    assert "HADOOP_CONF_DIR" not in spark_env(plain, plain.nodes[1])


def test_client_commands_use_the_node_s_configuration() -> None:
    command = hdfs.fs_shell("-put", "a b", "x")
    assert '"$HOME/spark/hdfs/conf:' in command and hdfs.FS_SHELL_CLASS in command
    assert "'a b'" in command and "-XX:+UseSerialGC" in command


# -- topology and configs -----------------------------------------------------------------------

def test_datanodes_need_a_namenode(hadoop: Path) -> None:
    plugin, version = SparkPlugin(), "4.0"
    plugin.validate(version, groups((["master", "namenode"], 1), (["worker", "datanode"], 2)))
    plugin.validate(version, groups((["master"], 1), (["worker"], 1)))
    plugin.validate(version, groups((["master", "namenode"], 1), (["worker"], 1)))
    with pytest.raises(PluginInvalid, match="datanode processes need a namenode"):
        plugin.validate(version, groups((["master"], 1), (["worker", "datanode"], 2)))
    with pytest.raises(PluginInvalid, match="at most 1 namenode"):
        plugin.validate(version, groups((["master", "namenode"], 1),
                                        (["worker", "namenode"], 1)))
    assert plugin.node_processes(version)["HDFS"] == ["namenode", "datanode"]


def test_hdfs_without_the_hadoop_jars_is_refused_and_says_how_to_get_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hdfs.HOME_VARIABLE, str(tmp_path / "none"))
    with pytest.raises(PluginUnavailable, match="tools/hadoop-jars"):
        hdfs.hadoop_home()
    with pytest.raises(PluginInvalid, match="tools/hadoop-jars"):
        SparkPlugin().validate("4.0", groups((["master", "namenode"], 1), (["worker"], 1)))
    with pytest.raises(PermanentFailure, match="tools/hadoop-jars"):
        SparkPlugin().configure(cluster(MASTER, W1))


@pytest.mark.parametrize(("name", "value"), [
    ("dfs.replication", 0), ("dfs.replication", "x"), ("dfs.blocksize", 1000),
    ("dfs.blocksize", 1048577), ("NameNode memory", "-XX:+Evil"), ("DataNode memory", "1 g"),
    ("dfs.permissions.enabled", "false")])
def test_hdfs_configs_are_checked(name: str, value: Any) -> None:
    with pytest.raises(PluginInvalid):
        SparkPlugin().validate_configs("4.0", {"HDFS": {name: value}})


def test_good_hdfs_configs_pass() -> None:
    SparkPlugin().validate_configs("4.0", {"HDFS": {
        "dfs.replication": 2, "dfs.blocksize": 8 << 20, "NameNode memory": "768m",
        "DataNode memory": "1g"}})


# -- flows and ports ----------------------------------------------------------------------------

def test_flows_start_the_namenode_before_the_datanodes_and_stop_both(hadoop: Path) -> None:
    plugin = SparkPlugin()
    running = cluster(MASTER, W1, W2)
    configure = plugin.configure(running)
    assert {s.id for s in configure.specs if s.type == "hdfs.configure-node"} == {
        "configure-hdfs-m", "configure-hdfs-w1", "configure-hdfs-w2"}
    start = {s.id: s.requires for s in plugin.start(running).specs}
    assert start["start-namenode"] == ()
    assert start["start-datanode-w1"] == ("start-namenode",)
    assert set(start["hdfs-ready"]) == {"start-namenode", "start-datanode-w1",
                                        "start-datanode-w2"}
    w3 = node("w3", "127.10.0.4", "worker", "datanode")
    scale = {s.id: s.requires for s in plugin.scale(cluster(MASTER, W1, W2, w3), [w3]).specs}
    assert scale["start-datanode-w3"] == ("configure-hdfs-w3",)
    assert "start-namenode" not in scale
    decommission = plugin.decommission(running, [W2])
    assert [s.args.get("processes") for s in decommission.specs
            if s.type == "hdfs.stop-node"] == [["datanode"]]
    stops = {s.id for s in plugin.on_terminate(running).specs if s.type == "hdfs.stop-node"}
    assert stops == {"stop-hdfs-m", "stop-hdfs-w1", "stop-hdfs-w2"}


def test_a_cluster_without_hdfs_gets_no_hdfs_task() -> None:
    plugin = SparkPlugin()
    plain = cluster(node("m", "127.10.0.1", "master"), node("w", "127.10.0.2", "worker"))
    for flow in (plugin.configure(plain), plugin.start(plain), plugin.on_terminate(plain)):
        assert not [s for s in flow.specs if s.type.startswith("hdfs.")]


def test_open_ports_include_hdfs_s() -> None:
    plugin = SparkPlugin()
    assert {8020, 9870} <= set(plugin.open_ports(MASTER, "4.0"))
    assert {hdfs.datanode_port(W1), 9864, 9867} <= set(plugin.open_ports(W1, "4.0"))
