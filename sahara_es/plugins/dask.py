"""Dask distributed: one scheduler and workers (``dask scheduler`` / ``dask worker``)."""

from __future__ import annotations

from importlib import metadata

from sahara_es.plugins.base import ConfigOption, Plugin, Topology


def dask_version() -> str:
    try:
        return metadata.version("distributed")
    except metadata.PackageNotFoundError:
        return "2026.1.0"


class DaskPlugin(Plugin):
    name = "dask"
    title = "Dask"
    description = "Dask distributed clusters: one scheduler and workers."

    def versions(self) -> list[str]:
        return [dask_version()]

    def node_processes(self, version: str) -> dict[str, list[str]]:
        return {"Dask": ["scheduler", "worker"]}

    def topology(self, version: str) -> Topology:
        return Topology({"scheduler": (1, 1), "worker": (1, None)})

    def configs(self, version: str) -> list[ConfigOption]:
        return [
            ConfigOption("Scheduler port", "Dask", 8786, "int"),
            ConfigOption("Dashboard port", "Dask", 8787, "int"),
            ConfigOption("Worker threads", "Dask", 1, "int", scope="node"),
        ]

    def edp_job_types(self, version: str) -> list[str]:
        return ["Shell"]
