"""A plugin whose node processes do nothing: for measuring and testing the orchestration
alone (what Sahara's own ``fake`` plugin was for)."""

from __future__ import annotations

from sahara_es.plugins.base import Plugin, Topology


class FakePlugin(Plugin):
    name = "fake"
    title = "Fake plugin"
    description = "Nodes that run nothing; provisioning is orchestration only."

    def versions(self) -> list[str]:
        return ["0.1"]

    def node_processes(self, version: str) -> dict[str, list[str]]:
        return {"Fake": ["manager", "worker"]}

    def topology(self, version: str) -> Topology:
        return Topology({"manager": (1, 1), "worker": (0, None)})

    def edp_job_types(self, version: str) -> list[str]:
        return ["Shell", "Spark", "Java", "Pig", "Hive", "MapReduce"]
