"""The live receiver: serves one authenticated sender at a time, decodes its packets, and feeds the page's state.

Every connection gets its own thread (at most MAX_CONNECTIONS at once; more are closed at once) and
a HELLO; its first message must arrive within HANDSHAKE_S and carry a good tag (protocol.py), or the
connection is closed and counted as refused. Who holds the link:

- An authenticated sender becomes the live sender when there is none, or when the live one has sent
  no PACKET for TAKEOVER_S: a heartbeat alone does not keep the link against another authenticated
  sender (a camera that stopped giving frames is replaced by one that gives them). Otherwise it is
  answered REFUSED and closed; `send` tries again every half second.
- The live sender is gone after SILENCE_S without any message (no frame, no heartbeat).

Nothing a sender sends can take the receiver down: a bad header or tag closes that connection
(counted as malformed or refused), a packet that fails to decode is counted and answered with a
KEYFRAME_REQUEST. A packet that arrives more than MAX_LAG_S later than the stream's best is dropped
with the rest of its GOP: catching up beats showing the past. The kernel's receive buffer is bounded
(RECEIVE_BUFFER) so that a stalled receiver cannot have minutes of frames queued for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..bitstream import StreamConfig
from ..codec import Decoder
from ..errors import LinkError, MalformedMessageError, OutputError, StreamcodecError
from .protocol import AuthenticationError, Channel, Message, MessageType, greet, read_message, send_message
from .stats import LiveState, Picture

#: The live sender is gone after this long without any message (no frame, no heartbeat).
SILENCE_S = 3.0
#: A new connection must send a well-tagged first message within this long.
HANDSHAKE_S = 3.0
#: Another authenticated sender takes over from a live one that sent no PACKET for this long.
TAKEOVER_S = 2.0
#: Connections served at once (one thread each); further ones are closed on arrival.
MAX_CONNECTIONS = 8
#: The link's kernel receive buffer: at most a few seconds of a live stream wait there.
RECEIVE_BUFFER = 256 * 1024
#: Drop packets this much later than the stream's best delivery (clock-skew free: relative to the minimum).
MAX_LAG_S = 1.0
#: At most one keyframe request per this many seconds.
REQUEST_EVERY_S = 0.5


@dataclass
class ReceiverSettings:
    """What `streamcodec receive` (and `webcam`) asked for."""

    listen: tuple[str, int]
    token: str  # the link's secret (protocol.py); senders without it are refused
    engine: str = "auto"
    dump_frames: Path | None = None  # write "seq sha256" of every decoded frame to DIR/frames.txt
    exit_when_done: bool = False  # stop after the first sender says BYE (tests, benchmarks)


@dataclass(eq=False)
class _Peer:
    """An authenticated connection: its socket, its two channels, when it last sent a packet."""

    sock: socket.socket
    inbound: Channel
    outbound: Channel
    last_packet: float = field(default_factory=time.monotonic)

    def cut(self) -> None:
        """End the connection from another thread (its reader then sees the peer gone)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class Receiver:
    """Listens on `settings.listen`; `run()` serves senders until stopped."""

    def __init__(self, settings: ReceiverSettings, state: LiveState) -> None:
        self.settings, self.state = settings, state
        self.server = _listen(settings.listen)
        self.address: tuple[str, int] = self.server.getsockname()[:2]
        self.decoder: Decoder | None = None
        self.need_key = True
        self._best_offset: int | None = None
        self._last_request = 0.0
        self._stop = threading.Event()
        self._lock = threading.RLock()  # the live peer, the decoder and the counters of the stream
        self._live: _Peer | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._dump: TextIO | None = _open_dump(settings.dump_frames) if settings.dump_frames else None

    def run(self) -> None:
        """Accept and serve senders until `stop()` (or a BYE with exit_when_done)."""
        self.server.settimeout(0.5)
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self.server.accept()
                except TimeoutError:
                    continue
                if not self._slots.acquire(blocking=False):
                    conn.close()  # a flood of connections: each costs a thread, so they are bounded
                    self.state.count("refused")
                    continue
                threading.Thread(target=self._serve, args=(conn,), name="link", daemon=True).start()
        finally:
            self._stop.set()
            self.server.close()
            with self._lock:
                if self._live is not None:
                    self._live.cut()
                if self._dump is not None:
                    self._dump.close()
                    self._dump = None

    def stop(self) -> None:
        self._stop.set()

    def _serve(self, conn: socket.socket) -> None:
        try:
            peer, first = self._authenticate(conn)
            if peer is not None and first is not None:
                self._serve_live(peer, first)
        finally:
            conn.close()
            self._slots.release()

    def _authenticate(self, conn: socket.socket) -> tuple[_Peer | None, Message | None]:
        """HELLO, then the first message's tag, then the claim on the link; (None, None) when refused."""
        conn.settimeout(HANDSHAKE_S)
        try:
            inbound, outbound = greet(conn, self.settings.token)
            first = read_message(conn, inbound)
        except (StreamcodecError, OSError):  # no token, a bad tag, a bad header, silence, a reset
            self.state.count("refused")
            return None, None
        peer = _Peer(conn, inbound, outbound)
        if not self._claim(peer):
            self.state.count("refused")
            with contextlib.suppress(LinkError):
                send_message(conn, Message(MessageType.REFUSED, b"another sender is live"), outbound)
            return None, None
        return peer, first

    def _claim(self, peer: _Peer) -> bool:
        """Make `peer` the live sender unless a live one sent a packet in the last TAKEOVER_S."""
        with self._lock:
            live = self._live
            if live is not None and time.monotonic() - live.last_packet < TAKEOVER_S:
                return False
            if live is not None:
                live.cut()
                self.state.count("takeovers")
            self._live = peer
            self.need_key, self._best_offset = True, None
            self.state.count("connections")
            self.state.set_state("live")
            return True

    def _serve_live(self, peer: _Peer, first: Message) -> None:
        peer.sock.settimeout(SILENCE_S)
        said_bye, malformed = False, False
        try:
            said_bye = self._read_all(peer, first)
        except AuthenticationError:
            self.state.count("refused")
        except MalformedMessageError:
            malformed = True
        except (LinkError, OSError):
            pass
        with self._lock:
            if self._live is not peer:
                return  # taken over: the new sender's state stands
            self._live = None
            if malformed:
                self.state.count("malformed")
            if not said_bye:
                self.state.count("disconnects")
            self.state.set_state("sender finished" if said_bye else "sender gone: waiting for it to come back")
        if said_bye and self.settings.exit_when_done:
            self._stop.set()

    def _read_all(self, peer: _Peer, first: Message) -> bool:
        """Handle the live sender's messages until BYE (True) or until it is no longer the live one."""
        message = first
        while not self._stop.is_set():
            with self._lock:
                if self._live is not peer:
                    return False
                if message.type == MessageType.BYE:
                    return True
                self.state.sender_dropped = message.dropped
                self._handle(peer, message)
            message = read_message(peer.sock, peer.inbound)
        return False

    def _handle(self, peer: _Peer, message: Message) -> None:
        if message.type == MessageType.CONFIG:
            self._configure(message.payload)
        elif message.type == MessageType.PACKET:
            peer.last_packet = time.monotonic()
            self.state.arrived(len(message.payload))
            self._packet(peer, message)
        elif message.type in (MessageType.CAMERA, MessageType.MASK):
            kind = "camera" if message.type == MessageType.CAMERA else "mask"
            mime = "image/jpeg" if kind == "camera" else "image/png"
            self.state.show(kind, Picture(message.seq + 1, message.capture_us, data=message.payload, content_type=mime))

    def _configure(self, payload: bytes) -> None:
        try:
            config = StreamConfig.unpack(payload)
            if self.decoder is None or self.decoder.config != config:
                self.decoder = Decoder(config, backend=self.settings.engine)
                self.need_key = True
        except StreamcodecError:
            self.state.count("malformed")

    def _packet(self, peer: _Peer, message: Message) -> None:
        if self.decoder is None or (self.need_key and not message.keyframe) or self._too_late(message):
            self.state.count("skipped")
            self._request_keyframe(peer)
            return
        try:
            rgb = self.decoder.decode(message.payload)
        except StreamcodecError:
            self.state.count("corrupt")
            self._request_keyframe(peer)
            return
        except Exception:  # hostile bytes can trip any check below the codec's: counted, never fatal
            self.state.count("malformed")
            self._request_keyframe(peer)
            return
        self.need_key = False
        if notes := getattr(self.decoder.impl, "notes", None):
            notes.clear()  # live senders put a full plate in every keyframe; the notes concern file updates
        latency_ms = (time.time_ns() // 1000 - message.capture_us) / 1000
        self.state.decoded(Picture(message.seq + 1, message.capture_us, rgb=rgb), latency_ms)
        if self._dump is not None:
            self._dump.write(f"{message.seq} {hashlib.sha256(rgb.tobytes()).hexdigest()}\n")
            self._dump.flush()

    def _too_late(self, message: Message) -> bool:
        """Whether the packet lags the stream's best delivery by more than MAX_LAG_S (then its GOP is dropped)."""
        offset = time.time_ns() // 1000 - message.capture_us
        self._best_offset = offset if self._best_offset is None else min(self._best_offset, offset)
        if offset - self._best_offset > MAX_LAG_S * 1e6 and not message.keyframe:
            self.need_key = True
            return True
        return False

    def _request_keyframe(self, peer: _Peer) -> None:
        self.need_key = True
        if time.monotonic() - self._last_request < REQUEST_EVERY_S:
            return
        self._last_request = time.monotonic()
        self.state.count("keyframe_requests")
        with contextlib.suppress(LinkError):  # the read side sees the broken connection next
            send_message(peer.sock, Message(MessageType.KEYFRAME_REQUEST), peer.outbound)


def _listen(address: tuple[str, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # inherited by accepted connections
    try:
        server.bind(address)
    except OSError as exc:
        server.close()
        raise LinkError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror or exc}") from exc
    server.listen(MAX_CONNECTIONS)
    return server


def _open_dump(folder: Path) -> TextIO:
    """`--dump-frames`: a new or empty folder only (a user's files are never overwritten)."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputError("is not a new or empty folder; --dump-frames never writes into one that holds files", folder)
    folder.mkdir(parents=True, exist_ok=True)
    return (folder / "frames.txt").open("w", encoding="utf-8")
