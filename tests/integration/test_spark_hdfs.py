"""HDFS on a Spark cluster's own nodes, through the API, on real local nodes: a master that is
also the namenode and 2 workers that are also datanodes. Active with both datanodes live in
the NameNode's JMX; a file written into HDFS and read back with Hadoop's FsShell (``hdfs
dfs``) over SSH; a Spark word count run on the master by ``spark-submit`` reading a relative
HDFS path and writing its counts to HDFS; deleted with no NameNode or DataNode left.

On the SQLite store only: the store is not what is tested here, the JVMs cost the time.
"""

from __future__ import annotations

import shlex
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_es.infra import Node, SSHPool
from sahara_es.plugins import hdfs
from sahara_es.plugins.spark import spark_version
from sahara_es.store import Store, open_store
from tests.clouds import Cloud, running_cloud
from tests.edp import processes_with

pytestmark = pytest.mark.xdist_group("local-infra")

TIMEOUT = 420.0
DAEMONS = (hdfs.NAMENODE_CLASS.encode(), hdfs.DATANODE_CLASS.encode())

WORDCOUNT = '''
import sys
from operator import add
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("hdfs-wordcount").getOrCreate()
lines = spark.sparkContext.textFile(sys.argv[1], 2)
counts = lines.flatMap(lambda line: line.split()).map(lambda w: (w, 1)).reduceByKey(add, 2)
counts.map(lambda kv: "%s\\t%d" % kv).saveAsTextFile(sys.argv[2])
spark.stop()
'''

TEXT = "to be or not to be\nthat is the question\nto be is to do\n"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    try:
        hdfs.hadoop_home()
    except Exception as missing:  # PluginUnavailable: the jars are not fetched here
        pytest.skip(f"{missing}")
    store: Store = open_store(f"sqlite:///{tmp_path}/s.db", upgrade=True)
    try:
        with running_cloud(store, tmp_path, hosts=2) as running:
            yield running
    finally:
        store.close()


def wait(client: Any, path: str, headers: dict[str, str], *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        answer = client.get(f"{path}?show_progress=true", headers=headers)
        if answer.status_code == 404 and "gone" in statuses:
            return {}
        cluster: dict[str, Any] = answer.get_json()["cluster"]
        if cluster["status"] in statuses:
            return cluster
        assert time.monotonic() < deadline, (
            f"still {cluster['status']}: {cluster.get('status_description')}",
            [(step["step_name"], step.get("successful"),
              [(e.get("event_info"), e.get("successful")) for e in step.get("events", [])])
             for step in cluster.get("provision_progress") or []][-2:])
        time.sleep(0.5)


def daemons(instances: list[str]) -> set[int]:
    """The NameNode and DataNode processes of these instances (their command lines name
    their homes; other tests' clusters may run HDFS meanwhile)."""
    return {pid for daemon in DAEMONS for name in instances
            for pid in processes_with(daemon, f"/{name}/home/")}


def nodes_of(cloud: Cloud, cluster: dict[str, Any], process: str) -> list[Node]:
    found = []
    for group in cluster["node_groups"]:
        if process in group["node_processes"]:
            for item in group["instances"]:
                instance = cloud.services.provider.get_instance(item["instance_name"])
                assert instance is not None
                found.append(Node.of(instance))
    return found


def run(pool: SSHPool, node: Node, command: str, timeout: float = 180) -> str:
    result = pool.run(node, command, check=False, timeout=timeout)
    if result.exit_code != 0:
        print(result.stdout[-4000:], result.stderr[-12000:])  # shown when the test fails
    assert result.exit_code == 0, (command[-300:], result.stdout[-2000:],
                                   result.stderr[-4000:])
    return result.stdout


def test_hdfs_on_the_cluster_nodes_serves_files_and_spark(cloud: Cloud) -> None:
    client, services = cloud.client, cloud.services
    headers = {"X-Project-Id": f"p{uuid.uuid4().hex[:6]}"}
    answer = client.post("/v2/clusters", headers=headers, json={
        "name": f"hdfs-{uuid.uuid4().hex[:6]}", "plugin_name": "spark",
        "plugin_version": spark_version(),
        "node_groups": [
            {"name": "master", "flavor_id": "local.medium",
             "node_processes": ["master", "namenode"], "count": 1},
            {"name": "workers", "flavor_id": "local.small",
             "node_processes": ["worker", "datanode"], "count": 2}]})
    assert answer.status_code == 202, answer.get_json()
    cluster_id = answer.get_json()["cluster"]["id"]
    path = f"/v2/clusters/{cluster_id}"

    cluster = wait(client, path, headers, "Active", "Error")
    assert cluster["status"] == "Active", cluster["status_description"]
    assert cluster["verification"]["status"] == "GREEN"
    (master,) = nodes_of(cloud, cluster, "namenode")
    workers = nodes_of(cloud, cluster, "datanode")
    assert cluster["info"]["HDFS"] == {"Web UI": f"http://{master.address}:9870",
                                       "NameNode": f"hdfs://{master.address}:8020"}
    instances = [i["instance_name"] for g in cluster["node_groups"] for i in g["instances"]]
    assert len(daemons(instances)) == 3
    assert hdfs.live_datanodes(master.address) >= {w.address for w in workers}
    state = hdfs.namenode_bean(master.address, "FSNamesystemState")
    assert state["NumLiveDataNodes"] == 2 and state["FSState"] == "Operational"

    pool = services.ssh.pool(cluster_id)
    conf = run(pool, workers[0], f"cat {hdfs.CONF_DIR}/core-site.xml")
    assert f"hdfs://{master.address}:{hdfs.NAMENODE_PORT}" in conf
    env = run(pool, workers[0], "cat spark/conf/spark-env.sh")
    assert 'HADOOP_CONF_DIR="$HOME/spark/hdfs/conf"' in env

    # A file written into HDFS on one worker, read back on the other (relative paths: the
    # user's HDFS home, which the start made).
    run(pool, workers[0], f"printf %s {shlex.quote(TEXT)} > words.txt && "
        + hdfs.fs_shell("-mkdir", "-p", "wc") + " && "
        + hdfs.fs_shell("-put", "-f", "words.txt", "wc/input.txt"))
    assert run(pool, workers[1], hdfs.fs_shell("-cat", "wc/input.txt")) == TEXT
    listed = run(pool, master, hdfs.fs_shell("-ls", "-R", "/user"))
    assert f"/user/{master.username}/wc/input.txt" in listed

    # A Spark word count on the cluster: input and output in HDFS, read by an hdfs:/// path (the
    # cluster's fs.defaultFS), written by a relative one.
    pool.put_file(master, "hdfs_wordcount.py", WORDCOUNT)
    python = shlex.quote(sys.executable)
    run(pool, master,
        f"export PYSPARK_PYTHON={python} PYSPARK_DRIVER_PYTHON={python}"
        ' SPARK_HOME="$HOME/spark/dist" SPARK_CONF_DIR="$HOME/spark/conf"; '
        '"$SPARK_HOME/bin/spark-submit" --master'
        f" spark://{master.address}:7077 --conf spark.sql.shuffle.partitions=2"
        " --conf spark.executor.memory=480m"
        f" hdfs_wordcount.py hdfs:///user/{master.username}/wc/input.txt"
        " wc/output > wordcount.out 2>&1"
        " || { tail -c 4000 wordcount.out >&2; exit 1; }", timeout=300)
    output = run(pool, workers[1], hdfs.fs_shell("-cat", "wc/output/part-*"))
    counts = {word: int(n) for word, n in (line.split("\t") for line in output.splitlines())}
    expected: dict[str, int] = {}
    for word in TEXT.split():
        expected[word] = expected.get(word, 0) + 1
    assert counts == expected
    assert "_SUCCESS" in run(pool, master, hdfs.fs_shell("-ls", "wc/output"))

    assert client.delete(path, headers=headers).status_code == 204
    wait(client, path, headers, "gone")
    assert daemons(instances) == set()
