"""Prefect flows over the r1data stages: config.py (the pipeline YAML), keys.py (cache keys),
stages.py (one task per stage), pipelines.py (one flow per pipeline), report.py, run.py."""

import os

# No telemetry from Prefect (set before any flow module imports it).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The ephemeral API server migrates its database on first start: 20 s (Prefect's default) is
# too short on a loaded 2-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
