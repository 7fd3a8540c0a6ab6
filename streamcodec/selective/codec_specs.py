"""The fidelity codecs as selective mode drives them through PyAV: encoder and decoder names, CRF ranges, presets, options.

    CODECS[name] ─▶ CodecSpec (libx265 │ libsvtav1, hevc │ libdav1d, default CRF and preset, offline preset)
    CODEC_OPTIONS[name](crf, qp, preset, threads, offline) ─▶ the codec context's options

Keyframes come only when the caller asks; the options below switch off every periodic keyframe and
scene cut of the codecs' own (see `fidelity.py` for the bitstream rules both latencies keep).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedStreamError

__all__ = ["CODECS", "CODEC_OPTIONS", "LATENCIES", "PRESETS", "CodecSpec", "codec_spec", "offline_options"]


@dataclass(frozen=True)
class CodecSpec:
    """How one fidelity codec is driven through PyAV: encoder, decoder, and its low-delay options."""

    encoder: str
    decoder: str
    default_crf: int
    default_preset: str
    crf_range: tuple[int, int]
    offline_preset: str


#: The fidelity codecs by the name recorded in a stream's config. SVT-AV1 offline: preset 2 with lookahead 0
#: (`_svtav1_options`). Kept-region BD-rate against the former preset 4 with SVT's own lookahead, qualities 1-4
#: (`python scripts/benchmarks/sc_points.py CLIP`, 2026-11-23): carphone / still_crowd / still_people / bbb
#:     preset 3: -3.9 / -7.3 / -6.0 / -3.8 %; lookahead 0: -0.8 / -6.6 / -5.0 / +0.6 %; both: -4.0 / -12.7 / -10.0 / -2.4 %
#:     preset 2 and lookahead 0: -10.6 / -22.3 / -17.4 / -11.1 %
#: for 2.3x the whole encode's CPU time (640x480, quality 3: 14.6 against 37-39 fps end to end). Lookahead 0 still
#: codes hierarchical mini-GOPs; SVT only stops looking further ahead. Why that wins on the still-camera clips
#: (and loses 0.6 % on bbb's moving camera) was not investigated.
#: Tried on preset 4, carphone / still_people: tune 0 +3.6 / +2.5, tune 2 +8 / +15, cdef 0 +1.0 / +1.5, qm 8-15
#: +0.7 / +1.0, luminance-qp-bias 10 +0.2 / -1.7, sharpness +-2 within 0.3 %, restoration 0 with lookahead 0
#: -0.2 / -0.2 more; mfmv, dg, fast-decode: same bytes.
#: x265's offline preset "medium" with `_X265_OFFLINE` below (see there for the figures).
CODECS: dict[str, CodecSpec] = {
    "hevc": CodecSpec("libx265", "hevc", 28, "fast", (0, 51), "medium"),
    "av1": CodecSpec("libsvtav1", "libdav1d", 35, "10", (1, 63), "2"),
}
LATENCIES = ("zero", "offline")
#: Each codec's speed presets, slowest first (`--preset`).
PRESETS: dict[str, tuple[str, ...]] = {
    "hevc": ("placebo", "veryslow", "slower", "slow", "medium", "fast", "faster", "veryfast", "superfast", "ultrafast"),
    "av1": tuple(str(level) for level in range(14)),
}


def codec_spec(codec: str) -> CodecSpec:
    """The spec of fidelity codec `codec`; UnsupportedStreamError for a name not in CODECS."""
    if codec not in CODECS:
        raise UnsupportedStreamError(f"fidelity codec {codec!r} is unknown (known: {', '.join(CODECS)})")
    return CODECS[codec]


#: x265's offline tools on top of preset "medium" (bframes stay 0). Kept-region BD-rate (PSNR, qualities 1-4)
#: against the former offline ("fast", psy on), `python scripts/benchmarks/sc_points.py CLIP "--fidelity hevc"`:
#: carphone -5.6 %, still_people -9.3 %, for 1.0x / 1.05x the CPU time of a whole `streamcodec encode
#: --quality 3 --fidelity hevc` (the fidelity encode alone 1.3x). Alone: psy off -3.3 / -2.8 % (the psy options
#: trade PSNR, what the eval measures, for looks), medium +1.2 / -1.7 %, TU depth 2 -1.5 / -0.7 %, aq-mode 0
#: -1.6 / +1.2 % (not taken). Preset "slow" with these minus rd/rdoq: -9.8 / -13.1 %, but 1.1x / 1.3x the
#: whole encode's wall time (1.35x its CPU) on still_people: past what offline may cost.
_X265_OFFLINE = ["psy-rd=0", "psy-rdoq=0", "rd=4", "rdoq-level=2", "tu-intra-depth=2", "tu-inter-depth=2"]


def _x265_options(crf: int | None, qp: int | None, preset: str, threads: int, offline: bool = False) -> dict[str, str]:
    # keyint=-1: no periodic keyframes, only the forced ones (forced-idr makes them IDR, not CRA).
    # Offline keeps bframes=0: B-frames would reorder pictures, and the decoder is one-in-one-out.
    params = [
        "keyint=-1",
        "min-keyint=1",
        "scenecut=0",
        "bframes=0",
        "rc-lookahead=20" if offline else "rc-lookahead=0",
        "frame-threads=1",
        "open-gop=0",
        "repeat-headers=1",
        f"pools={threads}",
        "log-level=none",
        "info=0",  # no version/options SEI: ~2.3 kB on every keyframe otherwise
    ]
    if offline:
        params += _X265_OFFLINE
    if qp is not None:
        params.append(f"qp={qp}")
    options = {"preset": preset, "forced-idr": "1", "x265-params": ":".join(params)}
    if not offline:
        options["tune"] = "zerolatency"
    if qp is None:
        options["crf"] = str(crf)
    return options


def _svtav1_options(crf: int | None, qp: int | None, preset: str, threads: int, offline: bool = False) -> dict[str, str]:
    # pred-struct=1 is SVT-AV1's low-delay structure, rtc=1 its real-time tuning; pred-struct=2 its
    # random-access one (hierarchical mini-GOPs), every key frame closed (irefresh-type=2). keyint=-1
    # and scd=0 leave keyframes to the caller.
    # lookahead=0 offline too: see the figures above CODECS.
    structure = ["pred-struct=2", "irefresh-type=2", "lookahead=0"] if offline else ["pred-struct=1", "rtc=1", "lookahead=0"]
    params = [*structure, "keyint=-1", "scd=0", f"lp={threads}"]
    if qp is not None:
        params += ["rc=0", "aq-mode=0", f"qp={qp}"]
    options = {"preset": preset, "svtav1-params": ":".join(params)}
    if qp is None:
        options["crf"] = str(crf)
    return options


#: Each codec's options builder: (crf, qp, preset, threads, offline) → the codec context's options.
CODEC_OPTIONS = {"hevc": _x265_options, "av1": _svtav1_options}


def offline_options(codec: str) -> dict[str, str]:
    """The options a file's fidelity codec runs with (CRF 0 standing in for the quality's): what an eval cache keys on."""
    return CODEC_OPTIONS[codec](0, None, codec_spec(codec).offline_preset, 1, True)
