#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: system tools, a venv, CPU torch, the package.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}

missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v mkvinfo >/dev/null || missing+=(mkvtoolnix)
# The live page's test drives Debian's headless Chromium over the DevTools protocol (tests/test_live.py).
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install -q --upgrade pip >/dev/null
# torch 2.13.0 is the CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
$venv/bin/python -c "import torch" 2>/dev/null || $pip install -q torch==2.13.0
$pip install -q -e ".[dev,eval,onnx,cluster]"
# `--keep text` runs the PP-OCR detector that rapidocr-onnxruntime ships; only its model file is
# used (in onnxruntime), and its own dependencies would pull the GUI build of OpenCV: --no-deps.
$pip install -q --no-deps "rapidocr-onnxruntime>=1.3"
echo "set-up done: $venv"
