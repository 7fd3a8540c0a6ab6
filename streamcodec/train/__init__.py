"""Training: `streamcodec train --config configs/NAME.toml` for GC models and selective mode's generator.

`gc` is the GC training loop, `sc` the synthesis generator's, `losses` the adversarial losses they share,
`data` the crop sampler over images and videos, `gpu` the GPU recipe's timed run, `export` the checkpoint
to shipped weights (`streamcodec/weights/`).
"""
