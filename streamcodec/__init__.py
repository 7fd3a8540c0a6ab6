"""streamcodec: a learned generative video codec, its Matroska container and tools.

Public API::

    from streamcodec import Encoder, Decoder, encode_file, decode_file
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .codec import Decoder, Encoder
    from .pipeline.decode import decode_file
    from .pipeline.encode import encode_file

_LAZY = {
    "Encoder": ("codec", "Encoder"),
    "Decoder": ("codec", "Decoder"),
    "encode_file": ("pipeline.encode", "encode_file"),
    "decode_file": ("pipeline.decode", "decode_file"),
}

__all__ = ["Decoder", "Encoder", "__version__", "decode_file", "encode_file"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `streamcodec --help` and `import streamcodec.errors` do not load torch.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(name)
