"""The file pipeline's side of GC entropy coding on worker processes (`encode`/`decode --workers N`).

Both keep the stream's order: the encoder writes every track's packets in the order the source
gives them, whatever the batch; the decoder gets each packet's frame or error in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt

from ..codec import Decoder, EncodedFrame, Encoder
from ..errors import StreamcodecError
from ..io.demux import AudioPacket, VideoFrame

BATCH_PER_WORKER = 4  # frames each worker codes per batch: enough to hide a task's overhead


def encoded_in_batches(
    items: Iterator[VideoFrame | AudioPacket], encoder: Encoder, workers: int
) -> Iterator[tuple[VideoFrame | AudioPacket, EncodedFrame | None]]:
    """The items in their order, each video frame with its packet when GC encodes in batches on workers.

    Otherwise (one worker, selective mode) frames come without one, to be encoded as they are written.
    """
    if workers <= 1 or encoder.config.mode != "gc":
        yield from ((item, None) for item in items)
        return
    held: list[VideoFrame | AudioPacket] = []
    frames = 0
    for item in items:
        held.append(item)
        frames += isinstance(item, VideoFrame)
        if frames == BATCH_PER_WORKER * workers:
            yield from _encode_held(held, encoder, workers)
            held, frames = [], 0
    yield from _encode_held(held, encoder, workers)


def _encode_held(
    held: list[VideoFrame | AudioPacket], encoder: Encoder, workers: int
) -> Iterator[tuple[VideoFrame | AudioPacket, EncodedFrame | None]]:
    frames = [item.rgb for item in held if isinstance(item, VideoFrame)]
    packets = iter(encoder.encode_batch(frames, workers=workers))
    for item in held:
        yield item, next(packets) if isinstance(item, VideoFrame) else None


def decode_many(decoder: Decoder, packets: Iterable[bytes], workers: int) -> Iterator[npt.NDArray[np.uint8] | StreamcodecError]:
    """Each packet's frame, or the StreamcodecError `decode` raises for it, in order.

    GC with workers > 1 entropy-decodes GOPs on that many processes (`GCDecoder.decode_many`,
    one frame per network call, so the pixels are `decode`'s); otherwise one packet at a time.
    """
    if workers > 1 and decoder.config.mode == "gc":
        yield from decoder.decode_many(packets, workers=workers)
        return
    for packet in packets:
        try:
            yield decoder.decode(packet)
        except StreamcodecError as exc:
            yield exc
