"""How the source's audio reaches the output file: copied packet for packet, or re-encoded."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import av

from ..io.audio_codecs import matroska_audio_track, strip_adts
from ..io.audio_transcode import AacTranscoder
from ..io.demux import AudioPacket
from ..io.matroska import TrackSpec


class AudioRoute:
    """Copy when Matroska has a mapping for the codec (untouched bytes), else re-encode to AAC."""

    def __init__(self, stream: av.audio.stream.AudioStream, number: int) -> None:
        copied = matroska_audio_track(stream, number)
        self.transcoder = None if copied else AacTranscoder(stream, number)
        self.track: TrackSpec = copied or self.transcoder.track  # type: ignore[union-attr]
        self._strip_adts = copied is not None and copied.codec_id == "A_AAC"
        name = stream.codec_context.name
        self.description = f"{name} (copied)" if copied else f"{name} re-encoded to AAC (no Matroska mapping)"

    def packets(self, item: AudioPacket) -> Iterator[tuple[Fraction, bytes, bool]]:
        """(time, data, keyframe) to write for one source packet."""
        if self.transcoder is None:
            yield item.time, strip_adts(item.data) if self._strip_adts else item.data, item.keyframe
            return
        for time, data in self.transcoder.transcode(item.packet):
            yield time, data, True

    def flush(self) -> Iterator[tuple[Fraction, bytes, bool]]:
        if self.transcoder is not None:
            for time, data in self.transcoder.flush():
                yield time, data, True
