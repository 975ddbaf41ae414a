#!/usr/bin/env bash
# The quickstart: embedded teacher (SmolLM2-135M-Instruct), easy synthetic prompts, 64 samples
# each at the R1 sampling parameters, verdicts, and the pass-rate report. ~5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
store=${STORE:-stores/quickstart}
r1=.venv/bin/r1data
$r1 models prepare smollm2
$r1 prompts synth --store "$store" --kinds arithmetic --n 4 --level 1
$r1 generate --store "$store" --run quickstart --model smollm2 --limit 4 --max-tokens 256
$r1 filter --store "$store" --run quickstart
$r1 query --store "$store" --report funnel
$r1 query --store "$store" --report checks
$r1 query --store "$store" --report pass_rate
