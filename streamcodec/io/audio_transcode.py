"""AAC re-encoding for source audio whose codec cannot be copied into Matroska.

Copying is always preferred (`audio_codecs.matroska_audio_track`); this is the fallback so that
no source audio is silently dropped. FFmpeg's native AAC-LC encoder is in every FFmpeg build and
always provides the AudioSpecificConfig that Matroska's A_AAC needs as CodecPrivate.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import av

from .audio_codecs import AAC_SAMPLE_RATES
from .matroska import TrackSpec

AAC_BITRATE = 128_000


class AacTranscoder:
    """Decode packets of `stream`, resample to planar float, encode AAC-LC.

    Args:
        stream: the source audio stream (PyAV); its packets are decoded with its own context.
        number: Matroska track number for the output track.
    """

    def __init__(self, stream: av.audio.stream.AudioStream, number: int, bitrate: int = AAC_BITRATE) -> None:
        source = stream.codec_context
        self.rate = source.sample_rate if source.sample_rate in AAC_SAMPLE_RATES else 48_000
        layout = "mono" if source.channels == 1 else "stereo"
        self.encoder = av.CodecContext.create("aac", "w")
        self.encoder.sample_rate = self.rate
        self.encoder.layout = layout
        self.encoder.format = "fltp"
        self.encoder.bit_rate = bitrate
        self.encoder.time_base = Fraction(1, self.rate)
        self.encoder.open()
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)
        self.source_name = source.name
        self.track = TrackSpec(
            number=number,
            kind="audio",
            codec_id="A_AAC",
            codec_private=bytes(self.encoder.extradata or b""),
            sampling_frequency=float(self.rate),
            channels=1 if layout == "mono" else 2,
            name=f"AAC (re-encoded from {source.name})",
        )
        self._next_sample: int | None = None

    def _encode(self, frame: av.AudioFrame | None) -> Iterator[tuple[Fraction, bytes]]:
        for packet in self.encoder.encode(frame):
            if packet.pts is not None:
                yield packet.pts * Fraction(1, self.rate), bytes(packet)

    def transcode(self, packet: av.Packet) -> Iterator[tuple[Fraction, bytes]]:
        """(time in seconds, AAC frame) for everything this source packet completes."""
        for decoded in packet.decode():
            assert isinstance(decoded, av.AudioFrame)
            if self._next_sample is None:
                start = decoded.pts * decoded.time_base if decoded.pts is not None and decoded.time_base else 0
                self._next_sample = round(start * self.rate)
            for frame in self.resampler.resample(decoded):
                frame.pts, frame.time_base = self._next_sample, Fraction(1, self.rate)
                self._next_sample += frame.samples
                yield from self._encode(frame)

    def flush(self) -> Iterator[tuple[Fraction, bytes]]:
        for frame in self.resampler.resample(None):
            frame.pts, frame.time_base = self._next_sample or 0, Fraction(1, self.rate)
            self._next_sample = (self._next_sample or 0) + frame.samples
            yield from self._encode(frame)
        yield from self._encode(None)
