"""HDFS on a Spark cluster's own nodes: Sahara's ``namenode`` and ``datanode`` processes.

The daemons are Hadoop's own (``hadoop-hdfs``, ``hadoop-common``, ``hadoop-hdfs-client`` of
the version of the Hadoop client bundled in pyspark), fetched by ``tools/hadoop-jars`` into
``.cache/hadoop/<version>`` (``SAHARA_ES_HADOOP_HOME`` names another home): a ``lib/`` of
jars and the empty ``webapps/`` folders the daemons look for on their classpath.

Provisioning is node tasks registered by name, like the Spark plugin's (whose helpers they
use: the start tasks are ``spark._StartDaemon``\\ s, the daemons are found and stopped by the
same command-line matching):

- ``hdfs.configure-node`` links the Hadoop home as ``$HOME/spark/hdfs/dist``, writes
  ``core-site.xml``, ``hdfs-site.xml`` and ``log4j.properties`` into ``$HOME/spark/hdfs/conf``
  (every node of a cluster with a namenode: Spark reads HDFS through it, HADOOP_CONF_DIR),
  and on the namenode's node formats the namespace once (not again once formatted);
- ``hdfs.start-namenode`` and ``hdfs.start-datanode`` start a daemon detached (``java`` with
  the jars on its classpath, unless it already runs) and wait until the NameNode's JMX shows
  it: the NameNode answering, the DataNode among its live nodes;
- ``hdfs.ready`` waits until the NameNode lists every datanode of the cluster live, then makes
  the cluster user's home folder ``/user/<node user>`` (what relative paths resolve against);
- ``hdfs.stop-node`` stops a node's HDFS daemons (best effort).

On a node, under its home (the command line of each daemon names ``$HOME/spark/``, which is
how a node's own daemons are told from other nodes' on a shared machine)::

    $HOME/spark/hdfs/dist      -> the Hadoop home (lib/*.jar, webapps/)
    $HOME/spark/hdfs/conf/     core-site.xml, hdfs-site.xml, log4j.properties (HADOOP_CONF_DIR)
    $HOME/spark/hdfs/name/     the NameNode's namespace (dfs.namenode.name.dir)
    $HOME/spark/hdfs/data/     the DataNode's blocks (dfs.datanode.data.dir)
    $HOME/spark/logs/          namenode.out, datanode.out
    $HOME/spark/run/           namenode.pid, datanode.pid

Loopback nodes: a connection to 127.10.0.1 leaves from 127.0.0.1, so the NameNode would
register every DataNode as 127.0.0.1. Each DataNode therefore names itself
(``dfs.datanode.hostname``), clients and DataNodes connect by that name, the NameNode does not
check it against the peer's address, and every port is bound to the node's own address.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
from importlib import util
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from sahara_es.engine import Flow, PermanentFailure, RetryPolicy, TaskContext, task_type
from sahara_es.infra.ssh import SSHError, SSHPool
from sahara_es.plugins.base import (
    STOP_GRACE,
    ClusterInfo,
    ConfigOption,
    HealthCheck,
    NodeInfo,
    PluginInvalid,
    check_int_range,
    node_args,
    node_task_id,
)
from sahara_es.plugins.catalog import PluginUnavailable
from sahara_es.plugins.spark import (
    _PIDS,
    _STOP,
    SIZE,
    DaemonNotReady,
    MasterUnreachable,
    SparkError,
    _NodeTask,
    _settings,
    _StartDaemon,
    wait_until,
)
from sahara_es.plugins.waits import read_status_page

SERVICE = "HDFS"
NAMENODE = "namenode"
DATANODE = "datanode"
PROCESSES = [NAMENODE, DATANODE]

NAMENODE_CLASS = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE_CLASS = "org.apache.hadoop.hdfs.server.datanode.DataNode"
FS_SHELL_CLASS = "org.apache.hadoop.fs.FsShell"

NAMENODE_PORT = 8020
"""The NameNode's RPC port: ``fs.defaultFS`` is ``hdfs://<namenode address>:8020``."""
NAMENODE_HTTP_PORT = 9870
"""The NameNode's web server, with its JMX at ``/jmx``."""
DATANODE_PORT = 9866
"""Hadoop's DataNode data transfer port; the nodes' own are ``datanode_port(node)``."""
DATANODE_HTTP_PORT = 9864
DATANODE_IPC_PORT = 9867

HDFS_DIR = "spark/hdfs"
"""Relative to the node's home. Under ``spark/`` so that ``spark._PIDS`` finds the daemons."""
CONF_DIR = f"{HDFS_DIR}/conf"

HOME_VARIABLE = "SAHARA_ES_HADOOP_HOME"
"""A Hadoop home (``lib/*.jar`` and ``webapps/``) to use instead of the repository's cache."""

DEFAULTS: dict[str, Any] = {
    "dfs.replication": None,
    "dfs.blocksize": None,
    "NameNode memory": "512m",
    "DataNode memory": "256m",
}
"""The HDFS configs a tenant may give; None: the replication is min(3, datanodes), the block
size Hadoop's own (128 MiB)."""

GC_OPTIONS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
"""Small daemons on small nodes: few GC threads, fast start."""

_JMX_TIMEOUT = 5.0
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


# -- where Hadoop is --------------------------------------------------------------------------

def _pyspark_folder() -> Path | None:
    found = util.find_spec("pyspark")
    if found is None or found.origin is None:
        return None
    return Path(found.origin).parent


def hadoop_version() -> str:
    """The version of the Hadoop client bundled in pyspark (``jars/hadoop-client-api-*``):
    the HDFS daemons are of the same version. ``PluginUnavailable`` without pyspark."""
    folder = _pyspark_folder()
    jars = sorted((folder / "jars").glob("hadoop-client-api-*.jar")) if folder else []
    if not jars:
        raise PluginUnavailable("no Hadoop client in the pyspark package (jars/"
                                "hadoop-client-api-*.jar): install pyspark")
    return jars[0].name.removeprefix("hadoop-client-api-").removesuffix(".jar")


def hadoop_home() -> str:
    """The Hadoop home the nodes run HDFS from: ``$SAHARA_ES_HADOOP_HOME``, else the
    repository's ``.cache/hadoop/<version>`` (``tools/hadoop-jars``). ``PluginUnavailable``,
    saying how to get it, when it holds no ``lib/hadoop-hdfs-*.jar`` or no ``webapps/hdfs``."""
    given = os.environ.get(HOME_VARIABLE, "")
    if given:
        home = Path(given)
    else:
        home = Path(__file__).resolve().parents[2] / ".cache" / "hadoop" / hadoop_version()
    if not list((home / "lib").glob("hadoop-hdfs-[0-9]*.jar")) or not (
            home / "webapps" / "hdfs").is_dir():
        raise PluginUnavailable(
            f"no Hadoop HDFS at {home} (lib/hadoop-hdfs-*.jar and webapps/hdfs/ are needed"
            " for the namenode and datanode processes): run tools/hadoop-jars, or set"
            f" {HOME_VARIABLE} to a Hadoop home")
    return str(home)


# -- the cluster's HDFS -------------------------------------------------------------------------

def namenode(cluster: ClusterInfo) -> NodeInfo | None:
    """The cluster's namenode, or None when it runs no HDFS."""
    found = cluster.with_process(NAMENODE)
    return found[0] if found else None


def _namenode(cluster: ClusterInfo) -> NodeInfo:
    found = namenode(cluster)
    if found is None:
        raise PermanentFailure(f"cluster {cluster.name} has no namenode")
    return found


def namenode_url(cluster: ClusterInfo) -> str | None:
    """``hdfs://<namenode address>:8020``, the cluster's ``fs.defaultFS``; None without HDFS."""
    found = namenode(cluster)
    return f"hdfs://{found.address}:{NAMENODE_PORT}" if found else None


def cluster_urls(cluster: ClusterInfo) -> dict[str, dict[str, str]]:
    """The HDFS part of the cluster's ``info``, as Sahara's plugins showed it: the
    NameNode's web UI and address; nothing without HDFS."""
    found = namenode(cluster)
    if found is None:
        return {}
    return {SERVICE: {"Web UI": f"http://{found.address}:{NAMENODE_HTTP_PORT}",
                      "NameNode": f"hdfs://{found.address}:{NAMENODE_PORT}"}}


def hdfs_home(cluster: ClusterInfo) -> str:
    """The HDFS folder relative paths resolve against on the cluster's nodes:
    ``/user/<node user>`` (every node of a cluster logs in as one user), made by the start."""
    node = namenode(cluster) or (cluster.nodes[0] if cluster.nodes else None)
    return f"/user/{node.username if node else 'hadoop'}"


def datanode_port(node: NodeInfo) -> int:
    """The data transfer port of ``node``'s DataNode (where clients read and write blocks):
    10000 + the low 16 bits of its IPv4 address modulo 20000, one per node of a cluster.

    Not Hadoop's one 9866 for all: a DataNode's registration reaches the NameNode from
    127.0.0.1 whatever its node's address, and the NameNode takes a DataNode registering
    with the address:port of another for that one come back: two DataNodes on the same
    port would keep replacing each other in its list of live nodes."""
    try:
        address = ipaddress.ip_address(node.address)
    except ValueError:
        return DATANODE_PORT
    return 10000 + (int(address) & 0xFFFF) % 20000


def check_datanode_ports(cluster: ClusterInfo) -> None:
    """``PermanentFailure`` if two datanodes of the cluster would use one transfer port."""
    seen: dict[int, str] = {}
    for node in cluster.with_process(DATANODE):
        port = datanode_port(node)
        if port in seen:
            raise PermanentFailure(f"datanodes {seen[port]} and {node.name} would both use"
                                   f" transfer port {port} (from their addresses)")
        seen[port] = node.name


def hdfs_settings(cluster: ClusterInfo) -> dict[str, Any]:
    return {name: cluster.config(SERVICE, name, default) for name, default in DEFAULTS.items()}


def replication(cluster: ClusterInfo) -> int:
    """``dfs.replication``: the tenant's, else min(3, datanodes) (at least 1)."""
    given = hdfs_settings(cluster)["dfs.replication"]
    if given is not None and str(given) != "":
        return int(given)
    return max(1, min(3, len(cluster.with_process(DATANODE))))


def _xml(properties: dict[str, str], comment: str) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f"<!-- {escape(comment)} -->",
             "<configuration>"]
    for name, value in properties.items():
        lines.append(f"  <property><name>{escape(name)}</name>"
                     f"<value>{escape(value)}</value></property>")
    lines += ["</configuration>", ""]
    return "\n".join(lines)


def core_site_properties(cluster: ClusterInfo, home: str) -> dict[str, str]:
    return {"fs.defaultFS": str(namenode_url(cluster)),
            "hadoop.tmp.dir": f"{home}/{HDFS_DIR}/tmp"}


def hdfs_site_properties(cluster: ClusterInfo, node: NodeInfo, home: str) -> dict[str, str]:
    """The node's hdfs-site.xml: its dirs under ``home``, every port on its own address (the
    NameNode's on the namenode's), and the loopback settings (see the module's doc)."""
    nn = _namenode(cluster).address
    own = node.address
    properties = {
        "dfs.namenode.name.dir": f"file://{home}/{HDFS_DIR}/name",
        "dfs.datanode.data.dir": f"file://{home}/{HDFS_DIR}/data",
        "dfs.replication": str(replication(cluster)),
        "dfs.namenode.rpc-address": f"{nn}:{NAMENODE_PORT}",
        "dfs.namenode.http-address": f"{nn}:{NAMENODE_HTTP_PORT}",
        "dfs.namenode.secondary.http-address": f"{nn}:9868",
        "dfs.datanode.address": f"{own}:{datanode_port(node)}",
        "dfs.datanode.http.address": f"{own}:{DATANODE_HTTP_PORT}",
        "dfs.datanode.ipc.address": f"{own}:{DATANODE_IPC_PORT}",
        "dfs.datanode.hostname": own,
        "dfs.client.use.datanode.hostname": "true",
        "dfs.datanode.use.datanode.hostname": "true",
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        # A fresh or small namespace leaves safe mode at once, and a DataNode gone is
        # declared dead in 90 s (not 10.5 min), so that health shows it.
        "dfs.namenode.safemode.extension": "1000",
        "dfs.namenode.heartbeat.recheck-interval": "30000",
    }
    blocksize = hdfs_settings(cluster)["dfs.blocksize"]
    if blocksize is not None and str(blocksize) != "":
        properties["dfs.blocksize"] = str(blocksize)
    return properties


def core_site(cluster: ClusterInfo, home: str) -> str:
    return _xml(core_site_properties(cluster, home),
                f"Written by sahara-es for cluster {cluster.name}")


def hdfs_site(cluster: ClusterInfo, node: NodeInfo, home: str) -> str:
    return _xml(hdfs_site_properties(cluster, node, home),
                f"Written by sahara-es for {node.name}; every configure rewrites it")


LOG4J = """\
# Written by sahara-es: the daemons log INFO to their .out file, clients WARN to stderr.
hadoop.root.logger=WARN,console
log4j.rootLogger=${hadoop.root.logger}
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
"""


def spark_env_lines(cluster: ClusterInfo) -> list[str]:
    """What a node's spark-env.sh gets so that Spark uses the cluster's HDFS (nothing for a
    cluster without one): HADOOP_CONF_DIR (``fs.defaultFS``, the loopback settings), and for
    drivers ``spark.hadoop.dfs.client.use.datanode.hostname``."""
    if namenode(cluster) is None:
        return []
    return [f'HADOOP_CONF_DIR="$HOME/{CONF_DIR}"',
            "SPARK_SUBMIT_OPTS='-Dspark.hadoop.dfs.client.use.datanode.hostname=true'"]


# -- commands run on a node -------------------------------------------------------------------

def _java(heap: str, cls: str, arguments: list[str], *, daemon: bool) -> str:
    """Shell text running ``cls`` of the node's Hadoop with its configuration (the classpath
    and properties name ``$HOME/spark/``, expanded on the node)."""
    dist = f'"$HOME/{HDFS_DIR}/dist"'
    props = [f"-Xmx{heap}", *GC_OPTIONS, f"-Dhadoop.home.dir={dist}",
             '-Dhadoop.log.dir="$HOME/spark/logs"',
             f"-Dhadoop.root.logger={'INFO' if daemon else 'WARN'},console"]
    classpath = f'"$HOME/{CONF_DIR}:$HOME/{HDFS_DIR}/dist:$HOME/{HDFS_DIR}/dist/lib/*"'
    return " ".join(['"${JAVA_HOME:+$JAVA_HOME/bin/}java"', *props, "-cp", classpath, cls,
                     *(shlex.quote(a) for a in arguments)])


def hadoop_command(cls: str, arguments: list[str], heap: str = "256m") -> str:
    """Shell text that runs a Hadoop program (``FsShell``, ``DFSAdmin``...) on a configured
    node, as a client of the cluster's HDFS."""
    return _java(heap, cls, arguments, daemon=False)


def fs_shell(*arguments: str) -> str:
    """Shell text for ``hdfs dfs <arguments>`` on a configured node."""
    return hadoop_command(FS_SHELL_CLASS, list(arguments))


def _launch(kind: str, cls: str, heap: str) -> str:
    """Start an HDFS daemon detached from the session, unless the node already runs it (as
    ``spark._launch_command`` does for Spark's)."""
    pid, log = f"spark/run/{kind}.pid", f"spark/logs/{kind}.out"
    return (
        _PIDS
        + f'running=$(spark_pids {cls}); if [ -n "$running" ]; then'
        f' echo "running $(echo $running)"; exit 0; fi; '
        f"mkdir -p spark/run spark/logs && rm -f {pid} && "
        f"nohup setsid sh -c 'echo $$ > \"$0\"; exec \"$@\"' {pid} "
        + _java(heap, cls, [], daemon=True)
        + f" > {log} 2>&1 < /dev/null & "
        f"for i in $(seq 50); do [ -s {pid} ] && break; sleep 0.1; done; echo started $(cat {pid})"
    )


# -- the NameNode's JMX -----------------------------------------------------------------------

def namenode_bean(address: str, name: str, timeout: float = _JMX_TIMEOUT) -> dict[str, Any]:
    """The NameNode's JMX bean ``Hadoop:service=NameNode,name=<name>``; ``DaemonNotReady``
    when it does not answer with it (read from the engine's side, like the Spark master's
    status; the node is the tenant's: at most a status page's size, no redirect)."""
    path = f"/jmx?qry=Hadoop:service=NameNode,name={name}"
    try:
        document = json.loads(read_status_page(address, NAMENODE_HTTP_PORT, path,
                                               timeout=timeout))
    except (OSError, ValueError) as error:
        raise DaemonNotReady(f"the NameNode's JMX at http://{address}:{NAMENODE_HTTP_PORT}"
                             f"{path} does not answer: {error}") from error
    beans = document.get("beans") if isinstance(document, dict) else None
    if not isinstance(beans, list) or not beans or not isinstance(beans[0], dict):
        raise DaemonNotReady(f"the NameNode at {address} shows no {name} yet")
    return beans[0]


def live_datanodes(address: str) -> set[str]:
    """The addresses (``dfs.datanode.hostname``) of the DataNodes the NameNode lists live."""
    info = namenode_bean(address, "NameNodeInfo")
    try:
        nodes = json.loads(str(info.get("LiveNodes") or "{}"))
    except ValueError as error:
        raise DaemonNotReady(f"the NameNode's LiveNodes is no JSON: {error}") from error
    live = set()
    for key, value in nodes.items() if isinstance(nodes, dict) else []:
        live.add(str(key).rsplit(":", 1)[0])
        if isinstance(value, dict) and value.get("xferaddr"):
            live.add(str(value["xferaddr"]).rsplit(":", 1)[0])
    return live


# -- what a tenant may configure ----------------------------------------------------------------

def config_options() -> list[ConfigOption]:
    return [
        ConfigOption("dfs.replication", SERVICE, None, "int",
                     description="Copies of each block (default: min(3, datanodes))"),
        ConfigOption("dfs.blocksize", SERVICE, None, "int",
                     description="Block size in bytes, a multiple of 512 from 1 MiB"
                                 " (default: Hadoop's, 128 MiB)"),
        ConfigOption("NameNode memory", SERVICE, DEFAULTS["NameNode memory"],
                     description="Heap of the NameNode (-Xmx)"),
        ConfigOption("DataNode memory", SERVICE, DEFAULTS["DataNode memory"],
                     description="Heap of each DataNode (-Xmx)"),
    ]


def check_setting(name: str, value: Any) -> None:
    """``PluginInvalid`` unless ``value`` may be handed on as HDFS config ``name``."""
    if value is None or value == "":
        return
    text = str(value)
    if name == "dfs.replication":
        check_int_range(value, 1, 512, f"{text!r} is not a replication from 1 to 512")
    elif name == "dfs.blocksize":
        check_int_range(value, 1 << 20, 1 << 40, f"{text!r} is not a block size in bytes"
                        " from 1 MiB")
        if int(text) % 512:
            raise PluginInvalid(f"{text!r} is not a multiple of 512 bytes")
    elif name in ("NameNode memory", "DataNode memory"):
        if not SIZE.fullmatch(text):
            raise PluginInvalid(f"{text!r} is not a memory size such as 512m or 2g")
    else:
        raise PluginInvalid(f"HDFS has no config {name!r}; it has"
                            f" {', '.join(sorted(DEFAULTS))}")


def check_topology(counts: dict[str, int]) -> None:
    """``PluginInvalid`` unless the processes' counts make an HDFS: datanodes need the
    namenode, and HDFS needs the Hadoop jars here."""
    if counts.get(DATANODE, 0) and not counts.get(NAMENODE, 0):
        raise PluginInvalid("datanode processes need a namenode in the cluster (HDFS: add"
                            " namenode to one node group, e.g. the master's)")
    if counts.get(NAMENODE, 0) or counts.get(DATANODE, 0):
        try:
            hadoop_home()
        except PluginUnavailable as missing:
            raise PluginInvalid(str(missing)) from None


# -- tasks --------------------------------------------------------------------------------------

@task_type("hdfs.configure-node")
class ConfigureNode(_NodeTask):
    """Link the Hadoop home, write the node's Hadoop configuration; on the namenode's node,
    format the namespace unless it is formatted."""

    idempotent = True
    retry = RetryPolicy(attempts=3, backoff=1.0)

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        node, pool, cluster = self.node, self.pool(ctx), self.cluster
        home = shlex.quote(self.args["hadoop_home"])
        dirs = ["conf", "tmp"] + (["name"] if NAMENODE in node.processes else []) + (
            ["data"] if DATANODE in node.processes else [])
        ctx.check_lease()
        prepared = pool.run(
            node.ssh_node(),
            f"test -d {home}/lib && test -d {home}/webapps/hdfs || exit 3; "
            "mkdir -p spark/logs spark/run "
            + " ".join(f"{HDFS_DIR}/{d}" for d in dirs)
            + f" && chmod 700 {HDFS_DIR}/tmp && ln -sfn {home} {HDFS_DIR}/dist"
            ' && printf "%s" "$HOME"', check=False, timeout=60)
        if prepared.exit_code == 3:
            raise PermanentFailure(f"no Hadoop on {node.name}: {self.args['hadoop_home']}"
                                   " has no lib/ or webapps/hdfs/ (tools/hadoop-jars)")
        if prepared.exit_code != 0:
            raise SparkError(f"preparing HDFS on {node.name} failed ({prepared.exit_code}):"
                             f" {prepared.stderr.strip()[-500:]}")
        node_home = prepared.stdout.strip()
        ssh = node.ssh_node()
        pool.put_file(ssh, f"{CONF_DIR}/core-site.xml", core_site(cluster, node_home), 0o644)
        pool.put_file(ssh, f"{CONF_DIR}/hdfs-site.xml", hdfs_site(cluster, node, node_home),
                      0o644)
        pool.put_file(ssh, f"{CONF_DIR}/log4j.properties", LOG4J, 0o644)
        formatted = None
        if NAMENODE in node.processes:
            formatted = self._format(ctx, pool)
        return {"node": node.name, "conf": CONF_DIR, "formatted": formatted}

    def _format(self, ctx: TaskContext, pool: SSHPool) -> bool:
        """Format the namespace unless it is: True when this call formatted it."""
        cluster_id = "".join(c for c in self.cluster.cluster_id if _SAFE_NAME.fullmatch(c))
        marker = f"{HDFS_DIR}/name/current/VERSION"
        ctx.check_lease()
        result = pool.run(
            self.node.ssh_node(),
            f"if [ -f {marker} ]; then echo formatted; exit 0; fi; "
            + _java("256m", NAMENODE_CLASS, ["-format", "-nonInteractive", "-clusterid",
                                             f"CID-{cluster_id or 'sahara-es'}"], daemon=False)
            + f" > spark/logs/namenode-format.out 2>&1; code=$?; [ $code = 0 ] && [ -f {marker} ]"
            " || { tail -c 2000 spark/logs/namenode-format.out; exit 4; }",
            check=False, timeout=180)
        if result.exit_code != 0:
            raise SparkError(f"formatting HDFS on {self.node.name} failed"
                             f" ({result.exit_code}): {result.stdout.strip()[-1500:]}"
                             f" {result.stderr.strip()[-500:]}")
        return result.stdout.strip() != "formatted"


@task_type("hdfs.start-namenode")
class StartNameNode(_StartDaemon):
    kind = NAMENODE
    cls = NAMENODE_CLASS

    def launch_command(self) -> str:
        return _launch(self.kind, self.cls, str(hdfs_settings(self.cluster)["NameNode memory"]))

    def ready(self) -> dict[str, Any]:
        state = namenode_bean(self.node.address, "FSNamesystemState")
        if state.get("FSState") != "Operational":
            raise DaemonNotReady(f"the NameNode is {state.get('FSState')}")
        return {"url": namenode_url(self.cluster), "state": state.get("FSState"),
                "live_datanodes": state.get("NumLiveDataNodes")}


@task_type("hdfs.start-datanode")
class StartDataNode(_StartDaemon):
    kind = DATANODE
    cls = DATANODE_CLASS

    def launch_command(self) -> str:
        return _launch(self.kind, self.cls, str(hdfs_settings(self.cluster)["DataNode memory"]))

    def ready(self) -> dict[str, Any]:
        nn = _namenode(self.cluster)
        if self.node.address not in live_datanodes(nn.address):
            raise DaemonNotReady(f"the NameNode does not list {self.node.address} live")
        return {"namenode": nn.name, "state": "live"}


@task_type("hdfs.ready")
class Ready(_NodeTask):
    """On the namenode's node: wait until the NameNode lists every datanode of the cluster
    live, then make ``hdfs_home`` (where relative paths resolve)."""

    idempotent = True
    retry = RetryPolicy(attempts=2, backoff=2.0)

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        cluster, node = self.cluster, self.node
        expected = {n.address for n in cluster.with_process(DATANODE)}

        def check() -> set[str]:
            live = live_datanodes(node.address)
            if not expected <= live:
                raise DaemonNotReady(f"the NameNode lists {len(expected & live)} of"
                                     f" {len(expected)} datanodes live; not:"
                                     f" {', '.join(sorted(expected - live))}")
            state = namenode_bean(node.address, "FSNamesystemState")
            if str(state.get("FSState")) != "Operational":
                raise DaemonNotReady(f"the NameNode is {state.get('FSState')}")
            return live

        timeout = float(_settings(cluster)["Start timeout"])
        live = wait_until(check, timeout, f"HDFS of {cluster.name} not ready")
        home = hdfs_home(cluster)
        ctx.check_lease()
        made = self.pool(ctx).run(node.ssh_node(), fs_shell("-mkdir", "-p", home),
                                  check=False, timeout=120)
        if made.exit_code != 0:
            raise SparkError(f"making {home} in HDFS failed ({made.exit_code}):"
                             f" {made.stderr.strip()[-800:]}")
        return {"node": node.name, "live_datanodes": sorted(live & expected), "home": home,
                "url": namenode_url(cluster)}


@task_type("hdfs.stop-node")
class StopNode(_NodeTask):
    """Stop a node's HDFS daemons (``args["processes"]``, default both): best effort."""

    idempotent = True
    retry = RetryPolicy(attempts=2, backoff=1.0)

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        node = self.node
        which = list(self.args.get("processes") or PROCESSES)
        stops = [f"spark_stop {cls} {kind}" for kind, cls in
                 ((DATANODE, DATANODE_CLASS), (NAMENODE, NAMENODE_CLASS)) if kind in which]
        ctx.check_lease()
        try:
            result = self.pool(ctx).run(node.ssh_node(), _STOP + "; ".join(stops),
                                        timeout=2 * STOP_GRACE + 60)
        except SSHError as error:
            return {"node": node.name, "stopped": False, "error": str(error)}
        return {"node": node.name, "stopped": True, "daemons": result.stdout.split("\n")[:-1]}


# -- flows (parts of the Spark plugin's) ----------------------------------------------------------

def _hadoop_home_or_fail() -> str:
    try:
        return hadoop_home()
    except PluginUnavailable as missing:
        raise PermanentFailure(str(missing)) from None


def add_configure(flow: Flow, cluster: ClusterInfo, nodes: list[NodeInfo]) -> list[str]:
    """``hdfs.configure-node`` for each of ``nodes`` (every node reads HDFS through its
    configuration), when the cluster has a namenode; the task ids."""
    if namenode(cluster) is None or not nodes:
        return []
    home = _hadoop_home_or_fail()
    check_datanode_ports(cluster)
    return [flow.add(node_task_id("configure-hdfs", node),
                     ConfigureNode({**node_args(cluster, node), "hadoop_home": home}))
            for node in nodes]


def add_start(flow: Flow, cluster: ClusterInfo, datanodes: list[NodeInfo] | None = None,
              *, with_namenode: bool = True, requires: dict[str, list[str]] | None = None
              ) -> str | None:
    """The NameNode, then ``datanodes`` (default: the cluster's), then ``hdfs.ready``; the
    ready task's id (None without HDFS). ``requires`` gives a node's start what it waits for
    besides the NameNode."""
    nn = namenode(cluster)
    if nn is None:
        return None
    first: list[str] = []
    if with_namenode:
        first = [flow.add("start-namenode", StartNameNode(node_args(cluster, nn)),
                          requires=(requires or {}).get(nn.name, []))]
    started = [flow.add(node_task_id("start-datanode", node),
                        StartDataNode(node_args(cluster, node)),
                        requires=[*first, *(requires or {}).get(node.name, [])])
               for node in (cluster.with_process(DATANODE) if datanodes is None else datanodes)]
    return flow.add("hdfs-ready", Ready(node_args(cluster, nn)), requires=[*first, *started])


def add_scale(flow: Flow, cluster: ClusterInfo, added: list[NodeInfo]) -> None:
    """Configure ``added`` nodes for HDFS and start their DataNodes."""
    configured = add_configure(flow, cluster, added)
    if not configured:
        return
    ids = {node.name: [task] for node, task in zip(added, configured, strict=True)}
    datanodes = [n for n in added if DATANODE in n.processes]
    if datanodes:
        add_start(flow, cluster, datanodes, with_namenode=False, requires=ids)


def add_decommission(flow: Flow, cluster: ClusterInfo, removed: list[NodeInfo]) -> None:
    for node in removed:
        if DATANODE in node.processes:
            flow.add(node_task_id("decommission-datanode", node),
                     StopNode(node_args(cluster, node, processes=[DATANODE])))


def add_stop(flow: Flow, cluster: ClusterInfo) -> None:
    for node in cluster.nodes:
        if set(PROCESSES) & set(node.processes):
            flow.add(node_task_id("stop-hdfs", node), StopNode(node_args(cluster, node)))


def health_checks(cluster: ClusterInfo) -> tuple[list[HealthCheck], list[str]]:
    """The HDFS checks of a running cluster (none without HDFS) and the failed nodes' names:
    the NameNode operational, every datanode listed live."""
    nn = namenode(cluster)
    if nn is None:
        return [], []
    try:
        state = namenode_bean(nn.address, "FSNamesystemState")
        live = live_datanodes(nn.address)
    except (DaemonNotReady, MasterUnreachable) as error:
        return [HealthCheck("HDFS namenode", "RED", str(error))], [nn.name]
    if state.get("FSState") != "Operational":
        return [HealthCheck("HDFS namenode", "RED",
                            f"the NameNode is {state.get('FSState')}")], [nn.name]
    checks = [HealthCheck("HDFS namenode", "GREEN",
                          f"{namenode_url(cluster)} is {state.get('FSState')}")]
    datanodes = cluster.with_process(DATANODE)
    failed = [n for n in datanodes if n.address not in live]
    if not failed:
        checks.append(HealthCheck("HDFS datanodes", "GREEN",
                                  f"all {len(datanodes)} datanodes are live"))
    else:
        checks.append(HealthCheck(
            "HDFS datanodes", "YELLOW" if len(failed) < len(datanodes) else "RED",
            f"{len(datanodes) - len(failed)} of {len(datanodes)} datanodes live; not: "
            + ", ".join(n.name for n in failed)))
    return checks, [n.name for n in failed]


def open_ports(node: NodeInfo) -> list[int]:
    ports: list[int] = []
    if NAMENODE in node.processes:
        ports += [NAMENODE_PORT, NAMENODE_HTTP_PORT]
    if DATANODE in node.processes:
        ports += [datanode_port(node), DATANODE_HTTP_PORT, DATANODE_IPC_PORT]
    return ports
