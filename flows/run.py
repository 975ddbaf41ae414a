"""Run a pipeline config locally (Prefect's ephemeral API) or serve it on a cron schedule."""

from __future__ import annotations

import os
from pathlib import Path

from r1data.errors import ConfigError
from r1data.flows.config import PipelineConfig, load_pipeline


def task_runner(cfg: PipelineConfig):
    """local: threads in this process; dask: a LocalCluster (or DASK_SCHEDULER_ADDRESS)."""
    if cfg.task_runner == "local":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=1)
    if cfg.task_runner == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise ConfigError("task_runner 'dask' needs prefect-dask: "
                              "pip install 'r1data[dask]'") from None
        address = os.environ.get("DASK_SCHEDULER_ADDRESS")
        if address:
            return DaskTaskRunner(address=address)
        from r1data.engines import cache_dir

        # Threads in this process: workers share its Prefect API (process workers would each
        # start their own ephemeral server) and no dashboard port is opened.
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": cfg.dask_workers,
                                              "threads_per_worker": 1, "processes": False,
                                              "dashboard_address": None,
                                              "local_directory": str(cache_dir() / "dask")})
    raise ConfigError("task_runner 'ray' is documented, not installed here: "
                      "pip install prefect-ray and use RayTaskRunner (see README)")


def build_flow(cfg: PipelineConfig):
    """The config's flow (pipelines.py), named after the config, on its task runner."""
    from r1data.flows.pipelines import FLOWS

    return FLOWS[cfg.flow].with_options(flow_run_name=cfg.name, task_runner=task_runner(cfg))


def run_pipeline(path: str | Path) -> dict:
    """`r1data flow run CONFIG`: one run on the ephemeral API, no server needed."""
    cfg = load_pipeline(path)
    home = Path(os.environ.setdefault("PREFECT_HOME", str(Path(cfg.store).parent / ".prefect")))
    home.mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level itself
    return build_flow(cfg)(str(Path(path).resolve()))


def serve_pipeline(path: str | Path, cron: str, *, name: str | None = None) -> None:
    """`r1data flow serve CONFIG --cron ...`: a scheduled deployment, served from this process."""
    cfg = load_pipeline(path)
    flow_obj = build_flow(cfg)
    flow_obj.serve(name=name or cfg.name, cron=cron,
                   parameters={"config_path": str(Path(path).resolve())})
