#!/usr/bin/env bash
# GPU smoke test (issue 12 item 4), for the day a CUDA machine is lent. Under 10 minutes on one GPU:
#   1. set-up with the CUDA `vllm` wheel (R1DATA_EXTRA=gpu scripts/setup.sh; SKIP_SETUP=1 skips it)
#   2. `r1data generate` on the GPU vLLM engine (SmolLM2, 16 prompts x 8 samples)
#   3. 20 SFT steps and 5 GRPO steps with --rollout vllm, both with --device cuda
#   4. asserts from metrics.jsonl that parameters and batches were on cuda; prints throughput
#      and peak memory.
# Without CUDA it stops at once with one line and exit code 1: it never falls back to the CPU.
#
#   bench/gpu_smoke.sh                    # everything, in runs/gpu_smoke
#   SKIP_SETUP=1 SMOKE_DIR=/tmp/s bench/gpu_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "gpu_smoke: $*" >&2; exit 1; }

# --- a GPU, before anything is installed -------------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  die "no CUDA GPU here (nvidia-smi finds none); this smoke test needs one and will not run on CPU"
fi
[ "${SKIP_SETUP:-0}" = 1 ] || R1DATA_EXTRA=gpu scripts/setup.sh
py=.venv/bin/python
r1=.venv/bin/r1data
$py -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || die "torch in .venv sees no GPU ($($py -c 'import torch; print(torch.__version__)')): set up a fresh venv with R1DATA_EXTRA=gpu"
nvidia-smi -L

W=${SMOKE_DIR:-runs/gpu_smoke}
M=${SMOKE_MODEL:-models/smollm2}
rm -rf "$W" && mkdir -p "$W"
[ -f "$M/config.json" ] || $r1 models prepare smollm2 --out "$M"
t_start=$(date +%s)

# --- 2. generation on the GPU engine -----------------------------------------------------------
$r1 prompts synth --store "$W/store" --kinds arithmetic --n 16
t0=$(date +%s)
$r1 generate --store "$W/store" --run smoke --model "$M" --engine vllm --n 8 --max-tokens 256 \
  --no-enforce-eager
t_gen=$(( $(date +%s) - t0 ))
$r1 query --store "$W/store" --out "$W/gen_tokens.csv" \
  "select sum(num_tokens) as t from samples where run = 'smoke'" >/dev/null
gen_tokens=$(tail -1 "$W/gen_tokens.csv")

# --- 3. training data (R1-format chains of thought; prompts with gold answers) -----------------
$py - "$W" <<'EOF'
import random, sys
import datasets
w = sys.argv[1]
rng = random.Random(0)
def pair():
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return a, b
sft = []
for _ in range(256):
    a, b = pair()
    steps = " ".join(f"step {k}: carry and add." for k in range(rng.randint(3, 12)))
    sft.append({"messages": [{"role": "user", "content": f"What is {a} + {b}?"},
                             {"role": "assistant", "content":
                              f"<think>\n{steps} {a} + {b} = {a + b}\n</think>\n\\boxed{{{a + b}}}"}]})
datasets.DatasetDict({"train": datasets.Dataset.from_list(sft[:240]),
                      "test": datasets.Dataset.from_list(sft[240:])}).save_to_disk(f"{w}/sft")
grpo = [{"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}], "answer": str(a + b)}
        for a, b in (pair() for _ in range(64))]
datasets.DatasetDict({"train": datasets.Dataset.from_list(grpo)}).save_to_disk(f"{w}/grpo")
EOF

$r1 train sft --data "$W/sft" --model "$M" --out "$W/sft_run" --max-steps 20 --batch-size 8 \
  --max-len 512 --device cuda --no-progress
$r1 train grpo --data "$W/grpo" --model "$M" --out "$W/grpo_run" --max-steps 5 \
  --num-generations 8 --prompts-per-step 4 --max-completion-length 256 --rollout vllm \
  --device cuda --no-progress

# --- 4. where it ran, how fast, how much memory -------------------------------------------------
$py - "$W" "$t_gen" "$gen_tokens" "$(( $(date +%s) - t_start ))" <<'EOF'
import json, statistics, sys
w, t_gen, gen_tokens, total = sys.argv[1], float(sys.argv[2]), float(sys.argv[3] or 0), sys.argv[4]
def rows(run):
    return [json.loads(x) for x in open(f"{w}/{run}/metrics.jsonl")]
sft, grpo = rows("sft_run"), rows("grpo_run")
for name, rs in (("sft", sft), ("grpo", grpo)):
    bad = [r for r in rs if not (r["param_device"].startswith("cuda")
                                 and r["batch_device"].startswith("cuda"))]
    if len(rs) == 0 or bad:
        sys.exit(f"gpu_smoke: {name} did not train on cuda: {bad[:1] or 'no metrics'}")
print(f"generate: {gen_tokens / t_gen:.0f} output tokens/s ({gen_tokens:.0f} tokens, {t_gen:.0f} s"
      " incl. engine start)")
print(f"sft: {statistics.median(r['tokens_per_s'] for r in sft[1:]):.0f} tokens/s (median of "
      f"{len(sft) - 1} steps), peak cuda {max(r['peak_cuda_mib'] for r in sft):.0f} MiB, "
      f"bf16={sft[-1]['bf16']}")
print(f"grpo: {statistics.median(r['seconds'] for r in grpo[1:]):.2f} s/step (rollout "
      f"{statistics.median(r['rollout_seconds'] for r in grpo[1:]):.2f} s), peak cuda "
      f"{max(r['peak_cuda_mib'] for r in grpo):.0f} MiB, peak RSS "
      f"{max(r['peak_rss_mib'] for r in grpo):.0f} MiB")
print(f"gpu_smoke: ok in {total} s")
EOF
