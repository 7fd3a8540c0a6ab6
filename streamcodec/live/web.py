"""The page: one static HTML+JS file, the latest pictures by long-polling, and the statistics as JSON.

    GET /                         page.html
    GET /stats                    LiveState.snapshot() as JSON
    GET /frame/NAME?after=SEQ     NAME in decoded, camera, mask: the newest picture with seq > SEQ
                                  (waits up to POLL_S; 204 if none), headers X-Seq and X-Capture-Us
Only GET, only these paths; the server answers from memory and never touches the file system
beyond the packaged page.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..errors import LinkError
from .stats import LiveState, Picture

POLL_S = 2.0
PICTURES = ("decoded", "camera", "mask")


def _encode(picture: Picture) -> bytes:
    if picture.rgb is None:
        return picture.data
    import cv2

    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(picture.rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else b""


def _handler(state: LiveState, page: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # the page polls many times a second; a log line each would drown the terminal

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                self._reply(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif url.path == "/stats":
                self._reply(HTTPStatus.OK, json.dumps(state.snapshot()).encode(), "application/json")
            elif url.path.startswith("/frame/") and url.path[7:] in PICTURES:
                self._picture(url.path[7:], parse_qs(url.query).get("after", ["0"])[0])
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
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the tab was closed mid-reply

    return Handler


class PageServer:
    """The page's HTTP server on `address`, in a background thread."""

    def __init__(self, address: tuple[str, int], state: LiveState) -> None:
        page = resources.files("streamcodec.live").joinpath("page.html").read_bytes()
        try:
            self.httpd = ThreadingHTTPServer(address, _handler(state, page))
        except OSError as exc:
            raise LinkError(f"cannot serve the page on {address[0]}:{address[1]}: {exc.strerror or exc}") from exc
        self.httpd.daemon_threads = True
        self.address: tuple[str, int] = self.httpd.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="page", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"

    def start(self) -> PageServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
