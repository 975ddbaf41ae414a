#!/usr/bin/env bash
# The quickstart: a short R1 distillation as one Prefect flow on the embedded defaults
# (flows/examples/quickstart.yaml): SmolLM2-135M harvests its own verified answers -> cold start
# (the teacher) -> R1 sampling -> verifiers -> curated SFT dataset -> student SFT -> base, teacher
# and student on the held-out exam -> report. It ends with the exam table.
set -euo pipefail
cd "$(dirname "$0")/.."
r1=.venv/bin/r1data
$r1 models prepare smollm2
echo "store: stores/quickstart  dataset: exports/quickstart-sft  student: students/quickstart/model"
echo "report: stores/reports/quickstart.html  (afterwards: r1data query --store stores/quickstart --report funnel)"
$r1 flow run flows/examples/quickstart.yaml
