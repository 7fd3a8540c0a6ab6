"""The page: one static HTML+JS file, the latest pictures by long-polling, and the statistics as JSON.

    GET /?token=T                         page.html
    GET /stats?token=T                    LiveState.snapshot() as JSON
    GET /frame/NAME?token=T&after=SEQ     NAME in decoded, camera, mask: the newest picture with seq > SEQ
                                          (waits up to POLL_S; 204 if none), headers X-Seq and X-Capture-Us
Every path wants the receiver's token (compared in constant time; 403 without it): the page's URL,
as printed, carries it, and the page passes it on. Only GET, only these paths; the server answers
from memory and never touches the file system beyond the packaged page. At most MAX_CLIENTS
connections are served at once (one thread each; more are closed on arrival), and a connection idle
for IDLE_S is closed. A client that resets mid-request is counted, never printed.
"""

from __future__ import annotations

import hmac
import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np

from ..errors import LinkError
from .stats import LiveState, Picture

POLL_S = 2.0
PICTURES = ("decoded", "camera", "mask")
#: A connection that sends nothing for this long is closed (a long-poll answers within POLL_S).
IDLE_S = 5.0
#: Connections served at once; a page keeps about four open.
MAX_CLIENTS = 32


def _encode(picture: Picture) -> bytes:
    if picture.rgb is None:
        return picture.data
    import cv2

    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(picture.rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else b""


def _handler(state: LiveState, page: bytes, token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = IDLE_S  # socketserver sets it on the connection: an idle client is let go

        def log_message(self, format: str, *args: object) -> None:
            pass  # the page polls many times a second; a log line each would drown the terminal

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if not hmac.compare_digest(query.get("token", [""])[0].encode(), token.encode()):
                self._reply(HTTPStatus.FORBIDDEN, b"forbidden: open the page's URL as printed, with its token", "text/plain")
            elif url.path in ("/", "/index.html"):
                self._reply(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif url.path == "/stats":
                self._reply(HTTPStatus.OK, json.dumps(state.snapshot()).encode(), "application/json")
            elif url.path.startswith("/frame/") and url.path[7:] in PICTURES:
                self._picture(url.path[7:], query.get("after", ["0"])[0])
            else:
                self._reply(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

        def _picture(self, name: str, after: str) -> None:
            seq = int(after) if after.isdigit() else 0
            picture = state.wait_picture(name, seq, POLL_S)
            if picture is None:
                self._reply(HTTPStatus.NO_CONTENT, b"", "text/plain")
                return
            headers = {"X-Seq": str(picture.seq), "X-Capture-Us": str(picture.captured_us)}
            self._reply(HTTPStatus.OK, _encode(picture), picture.content_type, headers)

        def _reply(self, status: HTTPStatus, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Referrer-Policy", "no-referrer")  # the URL holds the token
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the tab was closed mid-reply

    return Handler


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a bound on its threads and no tracebacks for clients that vanish."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self.refused = 0  # connections closed on arrival: MAX_CLIENTS were being served
        self.errors = 0  # requests that ended in an exception (mostly clients that reset)
        self._said = False

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread was started: give its slot back
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Count the failure; a client gone mid-request is normal, anything else is said once, in one line."""
        self.errors += 1
        error = sys.exc_info()[1]
        if isinstance(error, OSError) or self._said:
            return
        self._said = True
        print(f"streamcodec: the page's server: {type(error).__name__}: {error} (further ones are counted)", file=sys.stderr)


class PageServer:
    """The page's HTTP server on `address`, in a background thread; every request wants `token`."""

    def __init__(self, address: tuple[str, int], state: LiveState, token: str) -> None:
        page = resources.files("streamcodec.live").joinpath("page.html").read_bytes()
        try:
            self.httpd = _Server(address, _handler(state, page, token))
        except OSError as exc:
            raise LinkError(f"cannot serve the page on {address[0]}:{address[1]}: {exc.strerror or exc}") from exc
        self.token = token
        self.address: tuple[str, int] = self.httpd.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="page", daemon=True)

    @property
    def url(self) -> str:
        """The page's address with its token, to open in a browser."""
        host, port = self.address
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/?token={quote(self.token)}"

    def start(self) -> PageServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
