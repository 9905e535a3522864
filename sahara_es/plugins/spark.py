"""Apache Spark standalone: a master and workers from the Spark shipped in ``pyspark``."""

from __future__ import annotations

from importlib import metadata

from sahara_es.plugins.base import ConfigOption, Plugin, Topology


def spark_version() -> str:
    try:
        return metadata.version("pyspark")
    except metadata.PackageNotFoundError:
        return "4.0.0"


class SparkPlugin(Plugin):
    name = "spark"
    title = "Apache Spark"
    description = ("Spark standalone clusters: one master, workers; from the Spark"
                   " distribution in the pyspark package.")

    def versions(self) -> list[str]:
        return [spark_version()]

    def node_processes(self, version: str) -> dict[str, list[str]]:
        return {"Spark": ["master", "worker"]}

    def topology(self, version: str) -> Topology:
        return Topology({"master": (1, 1), "worker": (1, None)})

    def configs(self, version: str) -> list[ConfigOption]:
        return [
            ConfigOption("Master port", "Spark", 7077, "int", description="Spark master port"),
            ConfigOption("Master webui port", "Spark", 8080, "int",
                         description="Spark master web UI and JSON status port"),
            ConfigOption("Worker cores", "Spark", 1, "int", scope="node",
                         description="Cores each worker offers"),
            ConfigOption("Worker memory", "Spark", "512m", scope="node",
                         description="Memory each worker offers"),
        ]

    def edp_job_types(self, version: str) -> list[str]:
        return ["Spark", "Shell"]
