"""Which source audio streams can be copied packet for packet into Matroska, and how.

Each supported codec maps to its Matroska CodecID and the CodecPrivate its decoder needs
(Matroska codec mappings, IETF CELLAR "codec" registry). Anything else returns None and is left
to the caller to transcode.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import av.audio.stream

from streamcodec.errors import UnsupportedStreamError
from streamcodec.io.mkv_writer import TrackSpec

OPUS_SAMPLE_RATE = 48_000  # Opus always decodes at 48 kHz; pre-skip counts 48 kHz samples
OPUS_SEEK_PREROLL_NS = 80_000_000  # RFC 7845 §4.6: decode 80 ms before a seek target
AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
AAC_OBJECT_TYPES = {"Main": 1, "LC": 2, "SSR": 3, "LTP": 4}
ADTS_HEADER, ADTS_HEADER_WITH_CRC = 7, 9
_FLAC_STREAMINFO = 34
_SIMPLE = {"mp3": "A_MPEG/L3", "mp2": "A_MPEG/L2", "ac3": "A_AC3", "eac3": "A_EAC3"}
_PCM = {
    "pcm_s16le": ("A_PCM/INT/LIT", 16),
    "pcm_s24le": ("A_PCM/INT/LIT", 24),
    "pcm_s32le": ("A_PCM/INT/LIT", 32),
    "pcm_f32le": ("A_PCM/FLOAT/IEEE", 32),
}


@dataclass(frozen=True)
class _Mapping:
    codec_id: str
    codec_private: bytes | None = None
    bit_depth: int | None = None
    codec_delay_ns: int | None = None
    seek_preroll_ns: int | None = None
    sampling_frequency: float | None = None


def audio_specific_config(object_type: int, sample_rate: int, channels: int) -> bytes:
    """The 2-byte AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) for a plain AAC stream.

    Raises:
        ValueError: a sample rate without a frequency index, or a channel count without a
            channel configuration.
    """
    if sample_rate not in AAC_SAMPLE_RATES:
        raise ValueError(f"AAC sample rate {sample_rate} has no frequency index")
    configuration = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7}.get(channels)
    if configuration is None:
        raise ValueError(f"{channels} AAC channels have no channel configuration")
    bits = (object_type << 11) | (AAC_SAMPLE_RATES.index(sample_rate) << 7) | (configuration << 3)
    return bits.to_bytes(2, "big")


def strip_adts(data: bytes) -> bytes:
    """Remove the ADTS header from one AAC frame; other data is returned unchanged.

    Matroska's A_AAC blocks hold raw AAC frames, but raw .aac files and MPEG-TS carry each frame
    behind a 7- or 9-byte ADTS header. Only a header whose frame length equals the packet's
    length counts, so packets of other codecs that happen to start with 0xFFF pass through.

    Args:
        data: one packet of an A_AAC track.

    Returns:
        The raw AAC frame.

    Raises:
        UnsupportedStreamError: an ADTS frame holding several raw data blocks.
    """
    if len(data) < ADTS_HEADER or data[0] != 0xFF or data[1] & 0xF6 != 0xF0 or (data[2] >> 2) & 0xF >= 13:
        return data
    header = ADTS_HEADER if data[1] & 1 else ADTS_HEADER_WITH_CRC
    frame_length = ((data[3] & 0x03) << 11) | (data[4] << 3) | (data[5] >> 5)
    if frame_length != len(data) or frame_length <= header:
        return data
    if data[6] & 0x03:
        raise UnsupportedStreamError("ADTS frames with several raw data blocks cannot be copied into Matroska")
    return data[header:]


def _extradata(stream: av.audio.stream.AudioStream) -> bytes:
    return bytes(stream.codec_context.extradata or b"")


def _aac(stream: av.audio.stream.AudioStream) -> _Mapping | None:
    extradata = _extradata(stream)
    if len(extradata) >= 2:
        return _Mapping("A_AAC", extradata)
    # ADTS source: rebuild the config from the stream's parameters (the packets need strip_adts).
    context = stream.codec_context
    object_type = AAC_OBJECT_TYPES.get(context.profile or "LC")
    if object_type is None:  # HE-AAC: SBR signalling is not worth rebuilding; transcode instead
        return None
    try:
        return _Mapping("A_AAC", audio_specific_config(object_type, context.sample_rate, context.channels))
    except ValueError:
        return None


def _opus(stream: av.audio.stream.AudioStream) -> _Mapping | None:
    head = _extradata(stream)
    if len(head) < 19 or not head.startswith(b"OpusHead"):
        return None
    pre_skip = int.from_bytes(head[10:12], "little")
    return _Mapping(
        "A_OPUS",
        head,
        codec_delay_ns=round(pre_skip * 1e9 / OPUS_SAMPLE_RATE),
        seek_preroll_ns=OPUS_SEEK_PREROLL_NS,
        sampling_frequency=float(OPUS_SAMPLE_RATE),
    )


def _vorbis(stream: av.audio.stream.AudioStream) -> _Mapping | None:
    headers = _extradata(stream)
    # FFmpeg keeps the three Vorbis headers Xiph-laced (count byte 2 first), as Matroska does.
    return _Mapping("A_VORBIS", headers) if headers[:1] == b"\x02" else None


def _flac(stream: av.audio.stream.AudioStream) -> _Mapping | None:
    extradata = _extradata(stream)
    if extradata.startswith(b"fLaC"):
        return _Mapping("A_FLAC", extradata)
    if len(extradata) != _FLAC_STREAMINFO:
        return None
    # FFmpeg keeps only the STREAMINFO body; Matroska wants the stream marker and a last-block header.
    return _Mapping("A_FLAC", b"fLaC" + bytes((0x80, 0, 0, _FLAC_STREAMINFO)) + extradata)


def _simple(stream: av.audio.stream.AudioStream) -> _Mapping | None:
    return _Mapping(_SIMPLE[stream.codec_context.codec.canonical_name])


def _pcm(stream: av.audio.stream.AudioStream) -> _Mapping | None:
    codec_id, bits = _PCM[stream.codec_context.codec.canonical_name]
    return _Mapping(codec_id, bit_depth=bits)


_MAPPERS: dict[str, Callable[[av.audio.stream.AudioStream], _Mapping | None]] = {
    "aac": _aac,
    "opus": _opus,
    "vorbis": _vorbis,
    "flac": _flac,
    **{name: _simple for name in _SIMPLE},
    **{name: _pcm for name in _PCM},
}


def _language(stream: av.audio.stream.AudioStream) -> str:
    language = stream.language or stream.metadata.get("language") or "und"
    return language if re.fullmatch("[a-z]{3}", language) else "und"


def matroska_audio_track(stream: av.audio.stream.AudioStream, number: int) -> TrackSpec | None:
    """Describe a source audio stream as a Matroska track its packets can be copied into.

    Args:
        stream: the input audio stream (PyAV).
        number: the Matroska track number to give it.

    Returns:
        The TrackSpec, or None when the codec (or this stream's setup) cannot be copied and the
        caller must transcode. A_AAC packets must go through `strip_adts` (a no-op for raw
        frames). Opus gets CodecDelay = pre-skip, so its negative first timestamps stay exact.
    """
    mapper = _MAPPERS.get(stream.codec_context.codec.canonical_name)
    mapping = mapper(stream) if mapper else None
    if mapping is None:
        return None
    context = stream.codec_context
    return TrackSpec(
        number=number,
        kind="audio",
        codec_id=mapping.codec_id,
        codec_private=mapping.codec_private,
        sampling_frequency=mapping.sampling_frequency or float(context.sample_rate),
        channels=context.channels,
        bit_depth=mapping.bit_depth,
        codec_delay_ns=mapping.codec_delay_ns,
        seek_preroll_ns=mapping.seek_preroll_ns,
        name=stream.metadata.get("title"),
        language=_language(stream),
    )
