#!/usr/bin/env bash
# The GPU training recipe of progressive mode: trains configs/progressive-gpu.toml from a packed training set.
#   scripts/gpu/train_progressive_gpu.sh PACKED.npz OUT [MINUTES]   (default 25 minutes; needs only torch, numpy, pillow)
# PACKED.npz: python scripts/data/pack_training_set.py data/train -o data/packed-128.npz --crop 128 (here).
# Writes OUT/checkpoint.pt, OUT/model.pt and OUT/log.jsonl. Back on a machine with the full package:
#   python scripts/data/export_model.py OUT/model.pt --data data/train --name progressive-gpu
#   python scripts/benchmarks/progressive_stills.py --model progressive-gpu   (ship it only if it beats progressive-small)
set -euo pipefail
packed=${1:?packed training set (.npz)}
out=${2:?output folder}
minutes=${3:-25}
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m streamcodec.train.progressive_gpu --config configs/progressive-gpu.toml --data "$packed" --out "$out" --minutes "$minutes"
