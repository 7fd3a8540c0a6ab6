#!/usr/bin/env bash
# The GPU training recipe: trains the gc-gpu profile from a packed training set within a time budget.
#   scripts/gpu/train_gpu.sh PACKED.npz OUT [MINUTES]      (default 25 minutes; needs only torch, numpy, pillow)
# Writes OUT/checkpoint.pt and OUT/log.jsonl. Back on a machine with the full package, export it:
#   python scripts/data/export_model.py OUT/model.pt --data data/train --name gc-gpu   (docs/gpu.md)
set -euo pipefail
packed=${1:?packed training set (.npz)}
out=${2:?output folder}
minutes=${3:-25}
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m streamcodec.train.gpu --config configs/gc-gpu.toml --data "$packed" --out "$out" --minutes "$minutes"
