#!/usr/bin/env bash
# The quickstart: a short R1 distillation as one Prefect flow on the embedded defaults
# (flows/examples/quickstart.yaml): SmolLM2-135M cold start -> 64 samples per prompt -> verifiers
# -> curated SFT dataset -> student SFT -> R1 evaluation -> report. ~9 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
r1=.venv/bin/r1data
$r1 models prepare smollm2
$r1 flow run flows/examples/quickstart.yaml
$r1 query --store stores/quickstart --report funnel
$r1 query --store stores/quickstart --report pass_rate
echo "store: stores/quickstart  dataset: exports/quickstart-sft  student: students/quickstart/model"
echo "report: stores/reports/quickstart.html"
