"""Frame claims: several workers (processes, hosts, array jobs) sharing one DFT directory.

A worker claims a frame by creating ``CLAIM`` (holding ``host pid start-time``) before
computing it and removes it when the frame is done or has failed; other workers skip
claimed frames. Claims change only under a per-directory ``flock``. A claim left by a dead
process of the same host (or by a reused pid, or an empty one) is stale and taken over;
one from another host is honoured until removed by hand (delete ``frame_NNNNN/CLAIM``
when you know that worker is gone).
"""

from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path

CLAIM = "CLAIM"
CLAIMS_LOCK = ".claims.lock"


@contextmanager
def _claims_locked(out: Path):
    """Hold ``out/.claims.lock`` (flock): claims of ``out``'s frames change one at a time."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / CLAIMS_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _claim_token() -> str:
    """``host pid start``: which process holds a claim, robust to reused pids."""
    return f"{socket.gethostname()} {os.getpid()} {_process_start(os.getpid()) or '?'}"


def _claim_is_stale(path: Path) -> bool:
    """Whether ``path`` (a ``CLAIM``) was left by a process of this host that has died.

    Called with the claims lock held, so a claim is never half-written: one that does not
    parse is left-over garbage and stale. A live pid whose start time differs from the
    recorded one is a reused pid, so the claim is stale too. Claims of other hosts cannot
    be checked and stand.
    """
    try:
        fields = path.read_text().split()
    except OSError:
        return False  # removed meanwhile
    if len(fields) not in (2, 3) or not fields[1].isdigit():
        return True
    host, pid = fields[0], int(fields[1])
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    if len(fields) == 3 and fields[2] != "?":
        start = _process_start(pid)
        return start is not None and start != fields[2]
    return False


def claim_frame(workdir: Path) -> bool:
    """Claim ``workdir`` for this process; False if a live worker holds it.

    Check and write happen under the directory's claims lock, so two workers that both find
    a stale claim cannot both take it over.
    """
    from toolkit.data import atomic_write_text

    path = workdir / CLAIM
    with _claims_locked(workdir.parent):
        if path.exists() and not _claim_is_stale(path):
            return False
        workdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, _claim_token() + "\n")
        return True


def release_frame(workdir: Path) -> None:
    """Remove this process's claim on ``workdir``; another worker's claim is left alone."""
    path = workdir / CLAIM
    with _claims_locked(workdir.parent):
        try:
            mine = path.read_text().split() == _claim_token().split()
        except OSError:
            return
        if mine:
            path.unlink(missing_ok=True)
