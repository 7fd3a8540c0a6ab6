#!/usr/bin/env python3
"""Register a trained checkpoint (e.g. model.pt from scripts/gpu/train_gpu.sh) as a model of this installation.

    python scripts/data/export_model.py OUT/model.pt --data data/train --name gc-gpu [--to streamcodec/weights]

Writes NAME.npz (weights and the frozen entropy tables, counted over --data) and its entry in
registry.json; `streamcodec models` then lists it and `--model NAME` uses it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from streamcodec.models.registry import WEIGHTS_DIR
from streamcodec.train.export import export_checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="checkpoint.pt or model.pt of a training run")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="media for the entropy tables (the training set)")
    p.add_argument("--name", required=True, help="model name to register")
    p.add_argument("--to", type=Path, default=WEIGHTS_DIR, help="weights folder (default: the package's)")
    p.add_argument("--half", action="store_true", help="store the weights as float16 (half the size; run as float32)")
    args = p.parse_args()
    index = args.to / "registry.json"
    if index.exists() and args.name in json.loads(index.read_text()):
        raise SystemExit(f"export_model: {args.name!r} is already registered in {index}; pick another name")
    print(json.dumps(export_checkpoint(args.checkpoint, args.data, args.name, args.to, half=args.half)))


if __name__ == "__main__":
    main()
