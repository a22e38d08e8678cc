"""Progress bars: a live tqdm bar on a terminal, occasional plain lines anywhere else.

A tqdm bar redraws itself with carriage returns many times a second. On a terminal that is
what one wants; in a log file (``nohup``, a batch job, CI) every redraw stays, and a 10 ps MD
run used to leave thousands of ``\\r`` updates in its log. :func:`progress` therefore
returns a tqdm bar when its stream is a terminal, and otherwise a bar that writes one whole
line (no ``\\r``) when it starts, at most one per ``AETK_PROGRESS_SECONDS`` (default 30 s)
while it runs, and one when it ends. Both have tqdm's interface (``update``,
``set_postfix``, ``set_description``, iteration, context manager), so every loop of the
toolkit uses this one function.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

try:
    from tqdm import tqdm
except ImportError:  # a machine with torch and numpy only (a GPU node): silent bars
    tqdm = None

DEFAULT_SECONDS = 30.0  # between plain lines when the output is not a terminal
PLAIN_FORMAT = ("{desc}{percentage:3.0f}% {n_fmt}/{total_fmt} "  # tqdm's desc ends in ": "
                "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")


def line_interval() -> float:
    """Seconds between plain progress lines (``AETK_PROGRESS_SECONDS``, default 30)."""
    try:
        return max(0.0, float(os.environ.get("AETK_PROGRESS_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


class _Discard:
    """What tqdm itself writes (carriage returns, clearing, the closing newline) goes nowhere;
    the plain-line bar writes its own lines."""

    def __init__(self, stream: IO[str]):
        self._stream = stream
        self.encoding = getattr(stream, "encoding", "utf-8")

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class _SilentBar:
    """tqdm's interface doing nothing, where tqdm is not installed."""

    def __init__(self, iterable: Iterable | None = None, **kwargs: Any) -> None:
        self.iterable, self.n = iterable, 0

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        return None

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> _SilentBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class PlainLines(tqdm if tqdm is not None else _SilentBar):
    """A tqdm bar whose status goes out as whole lines: at start, every ``interval`` seconds
    at most, and once at the end (also for ``leave=False`` bars)."""

    def __init__(self, *args: Any, stream: IO[str] | None = None,
                 interval: float | None = None, **kwargs: Any):
        self._out = stream if stream is not None else sys.stderr
        self._interval = line_interval() if interval is None else interval
        self._last_line = -float("inf")
        self._final: bool | None = False  # True while closing, None once the last line is out
        kwargs["file"] = _Discard(self._out)
        kwargs.setdefault("mininterval", 0.0)  # the throttle is ours, in display()
        iterable = args[0] if args else kwargs.get("iterable")
        known = kwargs.get("total") is not None or hasattr(iterable, "__len__")
        if known:  # a line in a log needs no drawn bar
            kwargs.setdefault("bar_format", PLAIN_FORMAT)
            if kwargs.get("desc") and not kwargs["desc"].endswith(": "):
                kwargs["desc"] += ": "  # as set_description() writes it
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing a leave=False bar: nothing to clear in a log
            return True
        now = time.monotonic()
        if self._final is None or (not self._final and now - self._last_line < self._interval):
            return True
        self._last_line = now
        line = (self.__str__() if msg is None else msg).replace("\r", "").strip()
        if line:
            self._out.write(line + "\n")
            self._out.flush()
        if self._final:
            self._final = None  # the last line is out; tqdm's own closing display is not
        return True

    def close(self) -> None:
        if not self.disable and self._final is False:
            self._final = True
            self.display()
        super().close()


def progress(iterable: Iterable | None = None, *, enabled: bool = True,
             stream: IO[str] | None = None, **kwargs: Any):
    """A progress bar over ``iterable`` (or ``total=``), tqdm's keywords (``desc``, ``unit``,
    ``total``, ``leave``, ...). ``enabled=False`` gives a silent bar with the same interface
    (e.g. on MPI ranks other than 0). ``stream`` defaults to stderr."""
    stream = stream if stream is not None else sys.stderr
    if tqdm is None:
        return _SilentBar(iterable, **kwargs)
    if not enabled:
        return tqdm(iterable, disable=True, **kwargs)
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return tqdm(iterable, file=stream, **kwargs)
    return PlainLines(iterable, stream=stream, **kwargs)
