"""The stream configuration (CodecPrivate): every field checked before anything is allocated from it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import CorruptStreamError, UnsupportedStreamError
from .packet import CONFIG_MAGIC, FORMAT_VERSION, MAX_ITERATIONS

# Sane limits for a stream configuration: 16384 px a side, at most 8K UHD worth of pixels.
MAX_SIDE = 16384
MAX_PIXELS = 7680 * 4320
MAX_GOP = 1 << 20
MAX_NAME = 200  # characters of model_id, model_name, mode
KNOWN_MODES = frozenset({"gc", "sc", "progressive"})
# Selective mode's `extra`: each key's allowed values (a set) or integer range (a tuple).
SC_EXTRA: dict[str, frozenset[str] | tuple[int, int]] = {
    "fidelity": frozenset({"hevc", "av1", "learned"}),
    "background": frozenset({"plate", "synth"}),
    "block": (16, 16),
    "fill": frozenset({"recon", "hold", "flat", "blur"}),  # the encoder's business; recorded for `info`
    "fg_crf": (0, 63),
    "bg_crf": (0, 63),
    "feather": (0, 16),
}
# Optional, absent in zero-latency streams (the decoder does not need it): how the fidelity codec ran.
# "matrix": the fidelity layer's RGB conversion when it is not BT.601 (absent: bt601, as every older stream).
SC_OPTIONAL_EXTRA: dict[str, frozenset[str] | tuple[int, int]] = {
    "latency": frozenset({"zero", "offline"}),
    "matrix": frozenset({"bt601", "bt709"}),
}
MAX_KEEP = 16
# Optional: the background bound the encoder enforced (`--max-background-error`), luma levels; absent when off.
# The decoder does not need it (the mask carries every block it kept); recorded for `info`. Older decoders
# refuse a stream that carries it (an unknown field).
SC_BOUND = "max_background_error"
MAX_BOUND = 255
# Background "synth" since the SC generator: all of these or (older streams) none; never with "plate".
SC_SYNTH_EXTRA: dict[str, frozenset[str] | tuple[int, int] | type] = {
    "synth_model": str,  # registry name of the SC generator
    "synth_model_id": str,  # its content id, checked against the installation's at decode
    "labeler": frozenset({"builtin"}),
    "label_classes": (1, 256),
}


@dataclass(frozen=True)
class StreamConfig:
    """Everything a decoder needs besides the frame packets; stored as CodecPrivate."""

    model_id: str
    model_name: str
    mode: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    quality: int
    channels: int
    gop: int
    format_version: int = FORMAT_VERSION
    extra: dict[str, object] = field(default_factory=dict)

    def pack(self) -> bytes:
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return CONFIG_MAGIC + bytes([self.format_version]) + text.encode()

    @classmethod
    def unpack(cls, data: bytes) -> StreamConfig:
        """Parse and validate CodecPrivate bytes.

        Raises:
            CorruptStreamError: not a stream configuration, or a field of the wrong type or range.
            UnsupportedStreamError: a newer format version or an unknown mode.
        """
        if len(data) < 5 or data[:4] != CONFIG_MAGIC:
            raise CorruptStreamError("CodecPrivate is not a streamcodec stream configuration")
        if data[4] > FORMAT_VERSION:
            raise UnsupportedStreamError(f"stream format version {data[4]} is newer than this decoder ({FORMAT_VERSION})")
        try:
            fields = json.loads(data[5:].decode())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise CorruptStreamError(f"unreadable stream configuration: {exc}") from None
        if not isinstance(fields, dict):
            raise CorruptStreamError(f"stream configuration is JSON {type(fields).__name__}, not an object")
        missing = [name for name in _TYPES if name not in fields and name not in _DEFAULTED]
        if missing:
            raise CorruptStreamError(f"stream configuration lacks {', '.join(missing)}")
        _check_types(fields)
        config = cls(**{k: v for k, v in fields.items() if k in cls.__dataclass_fields__})
        config.validate()
        return config

    def validate(self) -> None:
        """Check every field's range (types were checked by `unpack`).

        Raises:
            CorruptStreamError: a size, quality, channel count or GOP outside its range.
            UnsupportedStreamError: a newer format version or an unknown mode.
        """
        _check_types(asdict(self))
        if self.format_version > FORMAT_VERSION:
            raise UnsupportedStreamError(
                f"stream format version {self.format_version} is newer than this decoder ({FORMAT_VERSION})"
            )
        if self.mode not in KNOWN_MODES:
            known = ", ".join(sorted(KNOWN_MODES))
            raise UnsupportedStreamError(f"stream mode {_show(self.mode)} is not supported by this decoder (known: {known})")
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise CorruptStreamError(f"stream configuration {name} {value} is outside {low}..{high}")
        for label, pixels in (("", self.width * self.height), ("coded ", self.coded_width * self.coded_height)):
            if pixels > MAX_PIXELS:
                raise CorruptStreamError(f"stream configuration {label}frame of {pixels} pixels exceeds {MAX_PIXELS}")
        if self.mode == "sc":
            _check_sc_extra(self.extra)
        elif self.mode == "progressive":
            _check_progressive(self)


_DEFAULTED = frozenset({"format_version", "extra"})
_TYPES: dict[str, type] = {
    "model_id": str,
    "model_name": str,
    "mode": str,
    **dict.fromkeys(("width", "height", "coded_width", "coded_height", "quality", "channels", "gop", "format_version"), int),
    "extra": dict,
}
_RANGES: dict[str, tuple[int, int]] = {
    **dict.fromkeys(("width", "height", "coded_width", "coded_height"), (1, MAX_SIDE)),
    "quality": (1, 255),
    "channels": (1, 255),  # a u8 in the LATENTS section
    "gop": (1, MAX_GOP),
    "format_version": (1, FORMAT_VERSION),
}


def _check_types(fields: dict[str, Any]) -> None:
    for name, kind in _TYPES.items():
        if name not in fields:
            continue
        value = fields[name]
        # bool is an int subclass and 256.0 a float: neither is a size.
        if type(value) is not kind:
            raise CorruptStreamError(
                f"stream configuration {name} is {_show(value)} ({type(value).__name__}); expected {kind.__name__}"
            )
        if isinstance(value, str) and not 0 < len(value) <= MAX_NAME:
            raise CorruptStreamError(f"stream configuration {name} {_show(value)} must be 1..{MAX_NAME} characters")


def _check_sc_extra(extra: dict[str, Any]) -> None:
    """Selective mode's `extra`: exactly the keys of SC_EXTRA plus "keep", each of its type and range."""
    unknown = sorted(set(extra) - set(SC_EXTRA) - set(SC_SYNTH_EXTRA) - set(SC_OPTIONAL_EXTRA) - {"keep", SC_BOUND})
    if unknown:
        raise UnsupportedStreamError(f"selective stream configuration has unknown field(s) {_show(unknown)}")
    missing = sorted(set(SC_EXTRA) - set(extra))
    if missing:
        raise CorruptStreamError(f"selective stream configuration lacks {', '.join(missing)}")
    for name, allowed in SC_EXTRA.items():
        _check_extra_field(name, extra[name], allowed)
    for name, optional in SC_OPTIONAL_EXTRA.items():
        if name in extra:
            _check_extra_field(name, extra[name], optional)
    _check_synth_extra(extra)
    bound = extra.get(SC_BOUND, MAX_BOUND)
    if type(bound) not in (int, float) or not 0 < bound <= MAX_BOUND:  # also refuses nan, inf and bool
        raise CorruptStreamError(f"selective stream configuration {SC_BOUND} {_show(bound)} is outside (0, {MAX_BOUND}]")
    keep = extra.get("keep", [])
    if type(keep) is not list or len(keep) > MAX_KEEP or any(type(k) is not str or not 0 < len(k) <= MAX_NAME for k in keep):
        raise CorruptStreamError(f"selective stream configuration keep {_show(keep)} is not a list of up to {MAX_KEEP} names")


def _check_extra_field(name: str, value: Any, allowed: frozenset[str] | tuple[int, int] | type) -> None:
    """One `extra` field: a name from a set, an integer in a range, or a string of 1..MAX_NAME characters."""
    if isinstance(allowed, frozenset):
        if type(value) is not str or value not in allowed:
            raise UnsupportedStreamError(f"selective stream configuration {name} {_show(value)} is not one of {sorted(allowed)}")
    elif isinstance(allowed, tuple):
        if type(value) is not int or not allowed[0] <= value <= allowed[1]:
            raise CorruptStreamError(
                f"selective stream configuration {name} {_show(value)} is outside {allowed[0]}..{allowed[1]}"
            )
    elif not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise CorruptStreamError(f"selective stream configuration {name} {_show(value)} is not a name of 1..{MAX_NAME} chars")


def _check_synth_extra(extra: dict[str, Any]) -> None:
    """The SC generator's fields: all or none, and only with background "synth"."""
    present = sorted(set(SC_SYNTH_EXTRA) & set(extra))
    if not present:
        return
    if extra["background"] != "synth":
        where = f"with background {extra['background']!r}"
        raise CorruptStreamError(f"selective stream configuration has {', '.join(present)} {where}")
    missing = sorted(set(SC_SYNTH_EXTRA) - set(extra))
    if missing:
        raise CorruptStreamError(f"selective stream configuration lacks {', '.join(missing)}")
    for name, allowed in SC_SYNTH_EXTRA.items():
        _check_extra_field(name, extra[name], allowed)


def _check_progressive(config: StreamConfig) -> None:
    """Progressive mode: `extra` holds exactly "iterations" (the model's) and "tables"; quality ≤ iterations;
    inter frames (gop > 1) only with adaptive coding. (Decoders from before inter frames refuse gop > 1 with this
    function's earlier check, so an inter stream fails there with one line, never with wrong pictures.)"""
    extra = config.extra
    if sorted(extra) != ["iterations", "tables"]:
        raise CorruptStreamError(f"progressive stream configuration extra {_show(sorted(extra))}; expected iterations, tables")
    iterations, tables = extra["iterations"], extra["tables"]
    if type(iterations) is not int or not 1 <= iterations <= MAX_ITERATIONS:
        raise CorruptStreamError(f"progressive stream configuration iterations {_show(iterations)} outside 1..{MAX_ITERATIONS}")
    if type(tables) is not str or not 0 < len(tables) <= MAX_NAME:
        raise CorruptStreamError(f"progressive stream configuration tables {_show(tables)} is not a name of 1..{MAX_NAME} chars")
    if config.quality > iterations:
        raise CorruptStreamError(f"progressive stream configuration quality {config.quality} is outside 1..{iterations}")
    if config.gop != 1 and tables != "adaptive":
        raise CorruptStreamError(
            f"progressive stream configuration gop {config.gop} with entropy tables {tables}; those are all intra (gop 1)"
        )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
