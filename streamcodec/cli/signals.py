"""Ctrl-C and SIGTERM: one line on stderr, exit status 128 + the signal (130, 143), nothing partial left.

Both take Ctrl-C's path: the handler raises KeyboardInterrupt in the main thread, the command's
`with`/`finally` blocks remove its output's partial, and `base.run` (or the package's `main`, for a
signal that lands while the commands are still being imported) says so in one line.

Python runs a handler only between the main thread's bytecodes. A command blocked in C, such as
FFmpeg reading a FIFO whose writer never ends (it retries the read after EINTR), would never get
there; so a watcher thread, woken by the signal itself (`signal.set_wakeup_fd`), ends the process
when the handler has not run within GRACE_S: it removes the process's live partials
(`io.safe_output`), says the line and exits with the same status. A second signal during the
clean-up does the same at once. Nothing here imports more than the standard library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

GRACE_S = 3.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)
MESSAGE = "interrupted; no partial output was left"


class _State:
    """The signal seen by this process's command, and the watcher's pipe (one per process)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.handled = threading.Event()  # the main thread's handler ran: the clean-up is under way
        self.said = threading.Lock()  # taken by whoever prints the line, once
        self.depth = 0
        self.wakeup: int | None = None  # the write end given to set_wakeup_fd
        self.prefix = "streamcodec"

    def reset(self) -> None:
        self.received, self.handled, self.said = None, threading.Event(), threading.Lock()
        self.prefix = "streamcodec"


_state = _State()


def exit_status() -> int:
    """128 + the signal that interrupted the command: 130 for Ctrl-C (or a KeyboardInterrupt of no signal), 143 for SIGTERM."""
    return 128 + (_state.received or signal.SIGINT)


def received() -> int | None:
    """The signal this command got, if any (a library may have turned its KeyboardInterrupt into another error)."""
    return _state.received


def set_prefix(prefix: str) -> None:
    """What the line starts with, e.g. "streamcodec encode", once the command is known."""
    _state.prefix = prefix


def say() -> None:
    """Print the one line, unless it was printed already (by the main thread or the watcher)."""
    if _state.said.acquire(blocking=False):
        print(f"{_state.prefix}: {MESSAGE}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGINT and SIGTERM handled as above while the block runs (re-entrant; nothing outside the main thread)."""
    if _state.depth or threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.reset()
    # One ignored by whoever started us (`cmd &` in a script ignores SIGINT) stays ignored.
    wanted = [signum for signum in SIGNALS if signal.getsignal(signum) != signal.SIG_IGN]
    previous = {signum: signal.signal(signum, _handler) for signum in wanted}
    old_wakeup = signal.set_wakeup_fd(_wakeup_fd(), warn_on_full_buffer=False)
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        signal.set_wakeup_fd(old_wakeup)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _handler(signum: int, frame: Any) -> None:
    if _state.received is not None:  # a second signal while cleaning up: end now
        _end_now(signum)
    _state.received = signum
    _state.handled.set()
    raise KeyboardInterrupt


def _end_now(signum: int) -> None:
    _state.received = _state.received or signum
    safe_output = sys.modules.get("streamcodec.io.safe_output")  # not imported: no partial to remove
    if safe_output is not None:
        safe_output.discard_live_partials()
    say()
    os._exit(exit_status())


def _wakeup_fd() -> int:
    """The pipe's write end the C-level handler writes each signal's number to; its watcher thread started once."""
    if _state.wakeup is None:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        threading.Thread(target=_watch, args=(read_end,), name="streamcodec-signals", daemon=True).start()
        _state.wakeup = write_end
    return _state.wakeup


def _watch(read_end: int) -> None:
    while True:
        for signum in os.read(read_end, 64):
            if signum in SIGNALS and not _state.handled.wait(GRACE_S):
                _end_now(signum)  # the main thread is stuck in C: nothing else will clean up


def _forget_in_child() -> None:
    """A forked child (a worker process) has no watcher: its signals must not wake the parent's."""
    _state.reset()
    _state.wakeup, _state.depth = None, 0
    with contextlib.suppress(ValueError):  # forked from another thread: it has no wakeup fd to drop
        signal.set_wakeup_fd(-1)


os.register_at_fork(after_in_child=_forget_in_child)
