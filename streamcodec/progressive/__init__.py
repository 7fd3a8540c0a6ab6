"""Progressive mode: a recurrent codec whose bitstream can be cut after any iteration (Toderici et al. 2017).

    net.py      ConvGRU encoder, ±1 binarizer, ConvGRU decoder with depth-to-space (torch modules)
    weights.py  the float16 weights file and its content identifier
    model.py    ProgressiveCodec: encode → (iterations, bits, h, w) {0, 1} codes, decode any prefix
    bits.py     the codes entropy coded one iteration per section (constriction), any prefix decodable
    codec.py    ProgressiveEncoder / ProgressiveDecoder: the mode behind `streamcodec.codec` (intra and inter frames)
"""

from __future__ import annotations

from .model import DEFAULT_PROGRESSIVE_MODEL, ProgressiveCodec, load_codec

__all__ = ["DEFAULT_PROGRESSIVE_MODEL", "ProgressiveCodec", "load_codec"]
