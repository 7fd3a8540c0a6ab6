#!/usr/bin/env python3
"""Pack training media into one .npz of JPEGs for the GPU recipe (scripts/gpu/train_gpu.sh).

    scripts/data/prepare_training_data.sh data/train
    python scripts/data/pack_training_set.py data/train -o data/packed.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from streamcodec.train.gpu import pack


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, nargs="+", help="folders or files of photographs and videos")
    p.add_argument("-o", "--out", type=Path, required=True, help="the .npz to write")
    p.add_argument("--crop", type=int, default=256, help="training crop size; smaller pictures are left out")
    p.add_argument("--budget-mb", type=float, default=38.0, help="largest size of the packed file")
    args = p.parse_args()
    if args.out.exists():
        raise SystemExit(f"pack_training_set: {args.out} exists; remove it or pick another name")
    print(json.dumps(pack(args.data, args.out, args.crop, args.budget_mb)))


if __name__ == "__main__":
    main()
