"""The live link's framing: length-prefixed messages over one TCP connection, both ways.

    header (28 bytes, big-endian)                     payload (length bytes, ≤ MAX_PAYLOAD)
    ┌──────┬─────────┬──────┬───────┬──────┬─────┬────────────┬─────────┬────────┐
    │ SCLV │ version │ type │ flags │ rsvd │ seq │ capture_us │ dropped │ length │ ...
    │ 4 B  │ 1 B     │ 1 B  │ 1 B   │ 1 B  │ 4 B │ 8 B        │ 4 B     │ 4 B    │
    └──────┴─────────┴──────┴───────┴──────┴─────┴────────────┴─────────┴────────┘

sender → receiver: CONFIG (a packed StreamConfig, at connect and before every keyframe), PACKET
(one frame packet of our bitstream, unchanged; flags bit 0 = keyframe), CAMERA and MASK (optional
JPEG/PNG previews for the page), HEARTBEAT, BYE. receiver → sender: KEYFRAME_REQUEST.
`capture_us` is the sender's wall clock when the frame was captured (µs since the epoch), so the
receiver can measure end-to-end latency; `dropped` is the sender's running count of dropped frames.
A header that fails its checks means the byte stream cannot be trusted any more: the reader raises
MalformedMessageError and the connection is closed (the receiver keeps listening).
"""

from __future__ import annotations

import enum
import socket
import struct
from dataclasses import dataclass

from ..errors import LinkError, MalformedMessageError

MAGIC = b"SCLV"
VERSION = 1
HEADER = struct.Struct(">4sBBBBIQII")
#: Bound on one message's payload: a 640x480 keyframe is ~30-150 kB; nothing legitimate comes near.
MAX_PAYLOAD = 4 * 1024 * 1024
KEYFRAME_FLAG = 1


class MessageType(enum.IntEnum):
    CONFIG = 1
    PACKET = 2
    CAMERA = 3
    MASK = 4
    HEARTBEAT = 5
    BYE = 6
    KEYFRAME_REQUEST = 7


@dataclass(frozen=True)
class Message:
    """One message of the link."""

    type: MessageType
    payload: bytes = b""
    seq: int = 0
    capture_us: int = 0
    dropped: int = 0
    keyframe: bool = False


def pack(message: Message) -> bytes:
    """Header + payload bytes of a message.

    Args:
        message: the message; its payload at most MAX_PAYLOAD bytes.
    Returns:
        The bytes to send.
    """
    if len(message.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(message.payload)} bytes is over the {MAX_PAYLOAD}-byte bound")
    flags = KEYFRAME_FLAG if message.keyframe else 0
    head = HEADER.pack(
        MAGIC,
        VERSION,
        int(message.type),
        flags,
        0,
        message.seq & 0xFFFFFFFF,
        message.capture_us,
        message.dropped & 0xFFFFFFFF,
        len(message.payload),
    )
    return head + message.payload


def unpack_header(head: bytes) -> tuple[MessageType, int, int, int, bool, int]:
    """Check a header: (type, seq, capture_us, dropped, keyframe, payload length); MalformedMessageError if bad."""
    magic, version, kind, flags, _, seq, capture_us, dropped, length = HEADER.unpack(head)
    if magic != MAGIC:
        raise MalformedMessageError(f"message magic {magic!r} is not {MAGIC!r}")
    if version != VERSION:
        raise MalformedMessageError(f"message version {version} is not {VERSION}")
    if kind not in MessageType.__members__.values():
        raise MalformedMessageError(f"message type {kind} is unknown")
    if length > MAX_PAYLOAD:
        raise MalformedMessageError(f"message length {length} is over the {MAX_PAYLOAD}-byte bound")
    return MessageType(kind), seq, capture_us, dropped, bool(flags & KEYFRAME_FLAG), length


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = sock.recv(min(left, 1 << 16))
        if not chunk:
            raise LinkError("the peer closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket) -> Message:
    """Read one whole message (blocking, under the socket's timeout).

    Returns:
        The message. Raises LinkError when the peer is gone, MalformedMessageError for a bad header,
        TimeoutError when nothing arrives in the socket's timeout.
    """
    kind, seq, capture_us, dropped, keyframe, length = unpack_header(_read_exactly(sock, HEADER.size))
    payload = _read_exactly(sock, length) if length else b""
    return Message(kind, payload, seq, capture_us, dropped, keyframe)


def send_message(sock: socket.socket, message: Message) -> None:
    """Send one message whole; LinkError when the peer is gone."""
    try:
        sock.sendall(pack(message))
    except OSError as exc:
        raise LinkError(f"send failed: {exc.strerror or exc}") from exc


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[V6]:PORT` → (host, port); ValueError naming the bad text."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else default_host
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"address {text!r}: port {port!r} is not a number") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"address {text!r}: port {number} is outside 0..65535")
    return host or default_host, number
