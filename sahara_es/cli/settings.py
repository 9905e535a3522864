"""What the configuration (``cli/config.py``) makes: the typed settings each part takes
(``ApiConfig``, ``EngineConfig``, step and job limits, the storage policy, the hosts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oslo_config import cfg

from sahara_es.api.app import ApiConfig
from sahara_es.edp.manager import JobLimits
from sahara_es.edp.storage import StoragePolicy
from sahara_es.engine import EngineConfig
from sahara_es.infra.base import HostInventory
from sahara_es.provisioning.services import StepLimits


def api_config(conf: cfg.ConfigOpts, *, store_url: str, data_dir: Path) -> ApiConfig:
    """The API's settings; in keystone mode, keystonemiddleware reads ``[keystone_authtoken]``
    from ``conf`` itself (it registers its options there)."""
    keystone: dict[str, Any] = {}
    if conf.api.auth_strategy == "keystone":
        keystone = {"oslo_config_config": conf}
    return ApiConfig(
        store_url=store_url, auth=conf.api.auth_strategy, keystone=keystone,
        plugins=list(conf.api.plugins) if conf.api.plugins else None,
        run_projector=conf.api.run_projector, engines=True, data_dir=str(data_dir),
        job_binary_root=conf.edp.job_binary_root or "",
        max_body_bytes=conf.api.max_body_bytes, max_json_depth=conf.api.max_json_depth,
        max_config_bytes=conf.api.max_config_bytes, reads=conf.api.reads,
        max_read_lag=conf.api.max_read_lag, affinity_window=conf.api.affinity_window)


def engine_config(conf: cfg.ConfigOpts) -> EngineConfig:
    engine = conf.engine
    return EngineConfig(engine_id=engine.id, region=engine.region,
                        concurrency=engine.concurrency, max_workflows=engine.max_workflows,
                        project_share=engine.project_share,
                        reclaim_slots=engine.reclaim_slots, lease_ttl=engine.lease_ttl,
                        sweep_interval=engine.sweep_interval,
                        offer_delay=engine.offer_delay,
                        region_takeover_grace=engine.region_takeover_grace)


def step_limits(conf: cfg.ConfigOpts) -> StepLimits:
    engine = conf.engine
    return StepLimits(default=engine.step_timeout, maximum=engine.step_timeout_max,
                      per_step=dict(engine.step_timeouts), cancel_grace=engine.cancel_grace)


def job_limits(conf: cfg.ConfigOpts) -> JobLimits:
    return JobLimits(poll_interval=conf.edp.job_poll_interval,
                     cancel_timeout=conf.edp.job_cancel_timeout)


def storage_policy(conf: cfg.ConfigOpts, *,
                   default_binary_root: Path | None = None) -> StoragePolicy:
    """``[edp]``'s object storage rules; ``file://`` binaries in ``job_binary_root``, else
    ``default_binary_root`` (the state folder's, for a process that serves the API too)."""
    edp = conf.edp
    root = edp.job_binary_root
    return StoragePolicy(
        swift_auth_url=edp.swift_auth_url or None, s3_endpoint=edp.s3_endpoint or None,
        binary_root=Path(root) if root else default_binary_root,
        private_hosts=frozenset(h.strip().lower() for h in edp.storage_private_hosts
                                if h.strip()))


def parse_hosts(value: str | None) -> list[HostInventory] | None:
    """``COUNT`` hosts of 8 vCPUs and 16 GB, or ``NAME=VCPUS:RAM_MB,...``; ValueError for
    anything else."""
    if not value:
        return None
    if value.isdigit():
        return [HostInventory(f"local-host-{i}", 8, 16384) for i in range(1, int(value) + 1)]
    hosts = []
    for item in value.split(","):
        name, _, size = item.partition("=")
        vcpus, _, ram = size.partition(":")
        if not (name and vcpus.isdigit() and ram.isdigit()):
            raise ValueError(f"{item!r}: give NAME=VCPUS:RAM_MB")
        hosts.append(HostInventory(name, int(vcpus), int(ram)))
    return hosts
