"""The live link's framing: length-prefixed, authenticated messages over one TCP connection, both ways.

    header (28 bytes, big-endian)                     payload (length bytes, ≤ MAX_PAYLOAD)   tag (32 B)
    ┌──────┬─────────┬──────┬───────┬──────┬─────┬────────────┬─────────┬────────┐ ┌─────┐ ┌──────────────┐
    │ SCLV │ version │ type │ flags │ rsvd │ seq │ capture_us │ dropped │ length │ │ ... │ │ HMAC-SHA256  │
    │ 4 B  │ 1 B     │ 1 B  │ 1 B   │ 1 B  │ 4 B │ 8 B        │ 4 B     │ 4 B    │ │     │ │              │
    └──────┴─────────┴──────┴───────┴──────┴─────┴────────────┴─────────┴────────┘ └─────┘ └──────────────┘

Version 2 authenticates every message. Both ends know a token (made by `receive`, given to `send`).
On each connection the receiver first sends HELLO carrying a fresh 16-byte nonce; each direction then
has its own key, HMAC-SHA256(token, label + direction + nonce), and its own message counter, and
each message's tag is HMAC-SHA256(key, counter ‖ header ‖ payload). A message from someone without
the token, a changed byte, a replay (same connection: the counter has moved on; another connection:
another nonce) or a reflection (the other direction's key) fails its tag. The link is authenticated,
not encrypted: anyone on the path can watch the video.

sender → receiver: CONFIG (a packed StreamConfig, at connect and before every keyframe), PACKET
(one frame packet of our bitstream, unchanged; flags bit 0 = keyframe), CAMERA and MASK (optional
JPEG/PNG previews for the page), HEARTBEAT, BYE. receiver → sender: HELLO, KEYFRAME_REQUEST,
REFUSED (another sender holds the link; payload: the reason). `capture_us` is the sender's wall clock
when the frame was captured (µs since the epoch), so the receiver can measure end-to-end latency;
`dropped` is the sender's running count of dropped frames. A header that fails its checks means the
byte stream cannot be trusted any more: the reader raises MalformedMessageError (a bad tag:
AuthenticationError, one of them) and the connection is closed (the receiver keeps listening).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import socket
import struct
from dataclasses import dataclass

from ..errors import LinkError, MalformedMessageError

MAGIC = b"SCLV"
VERSION = 2
HEADER = struct.Struct(">4sBBBBIQII")
TAG_SIZE = 32
NONCE_SIZE = 16
#: Bound on one message's payload: a 640x480 keyframe is ~30-150 kB; nothing legitimate comes near.
MAX_PAYLOAD = 4 * 1024 * 1024
KEYFRAME_FLAG = 1
#: Where `send` (and `webcam`'s sender) find the token when --token is not given.
TOKEN_ENV = "STREAMCODEC_TOKEN"
_LABEL = b"streamcodec live link v2 "


class MessageType(enum.IntEnum):
    CONFIG = 1
    PACKET = 2
    CAMERA = 3
    MASK = 4
    HEARTBEAT = 5
    BYE = 6
    KEYFRAME_REQUEST = 7
    HELLO = 8
    REFUSED = 9


class AuthenticationError(MalformedMessageError):
    """A live-link message whose tag is wrong: no token, another token, a changed byte or a replay."""


@dataclass(frozen=True)
class Message:
    """One message of the link."""

    type: MessageType
    payload: bytes = b""
    seq: int = 0
    capture_us: int = 0
    dropped: int = 0
    keyframe: bool = False


def new_token() -> str:
    """A fresh random token for a receiver (about 128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


class Channel:
    """One direction of one connection: its key and its message counter.

    Args:
        token: the link's shared token.
        nonce: the connection's nonce (from HELLO).
        direction: b"s2r" (sender → receiver) or b"r2s".
    """

    def __init__(self, token: str, nonce: bytes, direction: bytes) -> None:
        self._key = hmac.new(token.encode(), _LABEL + direction + nonce, hashlib.sha256).digest()
        self.counter = 0

    def tag(self, data: bytes) -> bytes:
        """The tag of the next message `data` (header + payload); moves the counter on."""
        tag = hmac.new(self._key, self.counter.to_bytes(8, "big") + data, hashlib.sha256).digest()
        self.counter += 1
        return tag

    def check(self, data: bytes, tag: bytes) -> None:
        """AuthenticationError unless `tag` is the next message's tag for `data` (compared in constant time)."""
        if not hmac.compare_digest(self.tag(data), tag):
            raise AuthenticationError("message tag does not match (no token, another token, or a replay)")


def pack(message: Message) -> bytes:
    """Header + payload bytes of a message (the tag goes after them).

    Args:
        message: the message; its payload at most MAX_PAYLOAD bytes.
    Returns:
        The bytes to tag and send.
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


def seal(message: Message, channel: Channel) -> bytes:
    """The bytes of `message` on the wire: header, payload, tag."""
    data = pack(message)
    return data + channel.tag(data)


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


def _read_raw(sock: socket.socket) -> tuple[Message, bytes, bytes]:
    """(message, its header + payload, its tag), unchecked but for the header."""
    head = _read_exactly(sock, HEADER.size)
    kind, seq, capture_us, dropped, keyframe, length = unpack_header(head)
    payload = _read_exactly(sock, length) if length else b""
    tag = _read_exactly(sock, TAG_SIZE)
    return Message(kind, payload, seq, capture_us, dropped, keyframe), head + payload, tag


def read_message(sock: socket.socket, channel: Channel) -> Message:
    """Read one whole message and check its tag (blocking, under the socket's timeout).

    Returns:
        The message. Raises LinkError when the peer is gone, MalformedMessageError for a bad header,
        AuthenticationError for a bad tag, TimeoutError when nothing arrives in the socket's timeout.
    """
    message, data, tag = _read_raw(sock)
    channel.check(data, tag)
    return message


def send_message(sock: socket.socket, message: Message, channel: Channel) -> None:
    """Send one message whole; LinkError when the peer is gone."""
    try:
        sock.sendall(seal(message, channel))
    except OSError as exc:
        raise LinkError(f"send failed: {exc.strerror or exc}") from exc


def greet(sock: socket.socket, token: str) -> tuple[Channel, Channel]:
    """The receiver's side of the handshake: send HELLO with a fresh nonce.

    Returns:
        (inbound, outbound): the channels to read the sender's messages and to write to it.
    """
    nonce = secrets.token_bytes(NONCE_SIZE)
    inbound, outbound = Channel(token, nonce, b"s2r"), Channel(token, nonce, b"r2s")
    send_message(sock, Message(MessageType.HELLO, nonce), outbound)
    return inbound, outbound


def answer_greeting(sock: socket.socket, token: str) -> tuple[Channel, Channel]:
    """The sender's side of the handshake: read HELLO and check that the receiver knows our token.

    Returns:
        (outbound, inbound). Raises AuthenticationError when the receiver's token is another one.
    """
    message, data, tag = _read_raw(sock)
    if message.type != MessageType.HELLO or len(message.payload) != NONCE_SIZE:
        raise MalformedMessageError(f"the receiver's first message is {message.type.name}, not a HELLO")
    inbound = Channel(token, message.payload, b"r2s")
    inbound.check(data, tag)
    return Channel(token, message.payload, b"s2r"), inbound


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
