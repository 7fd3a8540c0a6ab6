"""The live receiver: accepts one sender at a time, decodes its packets, and feeds the page's state.

Nothing a sender sends can take it down: a bad header closes that connection (counted as
malformed), a packet that fails to decode is counted and answered with a KEYFRAME_REQUEST, and a
sender that closes, breaks off or goes silent for SILENCE_S is reported as gone while the receiver
waits for it (or another) to connect. A packet that arrives more than MAX_LAG_S later than the
stream's best is dropped with the rest of its GOP: catching up beats showing the past.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..bitstream import StreamConfig
from ..codec import Decoder
from ..errors import LinkError, MalformedMessageError, OutputError, StreamcodecError
from .protocol import Message, MessageType, read_message, send_message
from .stats import LiveState, Picture

#: A sender silent this long (no frame, no heartbeat) is gone.
SILENCE_S = 3.0
#: Drop packets this much later than the stream's best delivery (clock-skew free: relative to the minimum).
MAX_LAG_S = 1.0
#: At most one keyframe request per this many seconds.
REQUEST_EVERY_S = 0.5


@dataclass
class ReceiverSettings:
    """What `streamcodec receive` (and `webcam`) asked for."""

    listen: tuple[str, int]
    engine: str = "auto"
    dump_frames: Path | None = None  # write "seq sha256" of every decoded frame to DIR/frames.txt
    exit_when_done: bool = False  # stop after the first sender says BYE (tests, benchmarks)


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
        self._dump: TextIO | None = _open_dump(settings.dump_frames) if settings.dump_frames else None

    def run(self) -> None:
        """Accept and serve senders one after another until `stop()` (or a BYE with exit_when_done)."""
        self.server.settimeout(0.5)
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self.server.accept()
                except TimeoutError:
                    continue
                if self._serve(conn) and self.settings.exit_when_done:
                    return
        finally:
            self.server.close()
            if self._dump is not None:
                self._dump.close()

    def stop(self) -> None:
        self._stop.set()

    def _serve(self, conn: socket.socket) -> bool:
        """One sender's connection; True when it ended with BYE."""
        state = self.state
        state.count("connections")
        state.set_state("live")
        conn.settimeout(SILENCE_S)
        self.need_key, self._best_offset = True, None
        said_bye = False
        try:
            said_bye = self._read_all(conn)
        except MalformedMessageError:
            state.count("malformed")
        except (LinkError, TimeoutError, OSError):
            pass
        finally:
            conn.close()
        if not said_bye:
            state.count("disconnects")
        state.set_state("sender finished" if said_bye else "sender gone: waiting for it to come back")
        return said_bye

    def _read_all(self, conn: socket.socket) -> bool:
        while not self._stop.is_set():
            message = read_message(conn)
            if message.type == MessageType.BYE:
                return True
            self.state.sender_dropped = message.dropped
            self._handle(conn, message)
        return False

    def _handle(self, conn: socket.socket, message: Message) -> None:
        if message.type == MessageType.CONFIG:
            self._configure(message.payload)
        elif message.type == MessageType.PACKET:
            self.state.arrived(len(message.payload))
            self._packet(conn, message)
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

    def _packet(self, conn: socket.socket, message: Message) -> None:
        if self.decoder is None or (self.need_key and not message.keyframe) or self._too_late(message):
            self.state.count("skipped")
            self._request_keyframe(conn)
            return
        try:
            rgb = self.decoder.decode(message.payload)
        except StreamcodecError:
            self.state.count("corrupt")
            self._request_keyframe(conn)
            return
        except Exception:  # hostile bytes can trip any check below the codec's: counted, never fatal
            self.state.count("malformed")
            self._request_keyframe(conn)
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

    def _request_keyframe(self, conn: socket.socket) -> None:
        self.need_key = True
        if time.monotonic() - self._last_request < REQUEST_EVERY_S:
            return
        self._last_request = time.monotonic()
        self.state.count("keyframe_requests")
        with contextlib.suppress(LinkError):  # the read side sees the broken connection next
            send_message(conn, Message(MessageType.KEYFRAME_REQUEST))


def _listen(address: tuple[str, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind(address)
    except OSError as exc:
        server.close()
        raise LinkError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror or exc}") from exc
    server.listen(4)
    return server


def _open_dump(folder: Path) -> TextIO:
    """`--dump-frames`: a new or empty folder only (a user's files are never overwritten)."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputError("is not a new or empty folder; --dump-frames never writes into one that holds files", folder)
    folder.mkdir(parents=True, exist_ok=True)
    return (folder / "frames.txt").open("w", encoding="utf-8")
