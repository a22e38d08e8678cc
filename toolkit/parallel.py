"""MPI for every job: who does what (share-out), putting results together (gather), and work
that only rank 0 does (files, messages) with its errors reaching every rank.

Under ``mpirun -np N`` the toolkit's jobs share independent items (frames, sweep cells,
transfer models) over ranks by a fixed rule, so each rank knows its share without talking,
and results are identical to a serial run. A rank may own nothing (more ranks than items);
every helper here works then too. Without ``mpirun`` the communicator is ``COMM_WORLD`` of
size 1 and all of this reduces to the serial case.

``mpi4py`` is imported through :func:`toolkit.lammps.mpi` (before any LAMMPS), see there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from toolkit.errors import AetkError

T = TypeVar("T")


class SerialComm:
    """The few communicator methods the toolkit uses, for one process: stands in for
    ``COMM_WORLD`` where mpi4py is not installed (e.g. a GPU node training from descriptor
    bundles, docs/paper_regime.md)."""

    def Get_rank(self) -> int:  # noqa: N802  (mpi4py's names)
        return 0

    def Get_size(self) -> int:  # noqa: N802
        return 1

    def Barrier(self) -> None:  # noqa: N802
        return None

    def bcast(self, value: Any, root: int = 0) -> Any:
        return value

    def allgather(self, value: Any) -> list:
        return [value]

    def gather(self, value: Any, root: int = 0) -> list:
        return [value]


def world():
    """``COMM_WORLD``: all ranks of this ``mpirun`` (one rank without it; a
    :class:`SerialComm` where mpi4py is not installed)."""
    from toolkit.lammps import world_comm

    try:
        return world_comm()
    except ImportError:
        return SerialComm()


def serial():
    """``COMM_SELF``: this rank alone (e.g. one LAMMPS instance per rank)."""
    from toolkit.lammps import self_comm

    return self_comm()


def rank_and_size(comm=None) -> tuple[int, int]:
    """(rank, size) of ``comm``; None means serial (0, 1)."""
    return (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())


def is_rank0(comm=None) -> bool:
    return rank_and_size(comm)[0] == 0


def share(items: Sequence[T], comm=None) -> list[T]:
    """This rank's items: every ``size``-th item from its own rank on (round robin).

    Callers that want balance sort ``items`` by cost first (largest first). Empty for a
    rank beyond the number of items.
    """
    rank, size = rank_and_size(comm)
    return list(items)[rank::size]


def share_indices(n: int, comm=None) -> list[int]:
    """This rank's indices of ``n`` items, round robin."""
    return share(range(n), comm)


def allgather_dict(part: dict, comm=None) -> dict:
    """Every rank's ``part`` merged into one dict on all ranks (keys are disjoint)."""
    rank, size = rank_and_size(comm)
    if size == 1:
        return dict(part)
    merged: dict = {}
    for piece in comm.allgather(part):
        merged.update(piece)
    return merged


def gather_lists(part: list, comm=None) -> list | None:
    """Every rank's ``part`` concatenated (in rank order) on rank 0; None elsewhere."""
    rank, size = rank_and_size(comm)
    if size == 1:
        return list(part)
    pieces = comm.gather(part, root=0)
    return None if pieces is None else [item for piece in pieces for item in piece]


def barrier(comm=None) -> None:
    if comm is not None and comm.Get_size() > 1:
        comm.Barrier()


def broadcast(value: T, comm=None) -> T:
    """Rank 0's ``value`` on every rank."""
    if comm is None or comm.Get_size() == 1:
        return value
    return comm.bcast(value, root=0)


def on_rank0(function: Callable[[], T], comm=None) -> T:
    """Run ``function`` on rank 0 only; every rank returns its result or raises its error.

    Without this, an error on rank 0 (a refused config, a missing file) would leave the
    other ranks waiting at the next barrier forever. An :class:`AetkError` is re-raised on
    every rank with rank 0's message (the same class where it can be rebuilt); any other
    exception is re-raised on rank 0 and reported to the others as an AetkError naming it.
    """
    rank, size = rank_and_size(comm)
    if size == 1:
        return function()
    result: Any = None
    failure: BaseException | None = None
    if rank == 0:
        try:
            result = function()
        except Exception as exc:  # reported to every rank below, then re-raised
            failure = exc
    message = comm.bcast(None if failure is None else _portable(failure), root=0)
    if failure is not None:
        raise failure
    if message is not None:
        raise _rebuild(*message)
    return comm.bcast(result, root=0)


def _portable(exc: BaseException) -> tuple[str, str, bool]:
    return type(exc).__module__ + ":" + type(exc).__qualname__, str(exc), \
        isinstance(exc, AetkError)


def _rebuild(kind: str, text: str, user_error: bool) -> AetkError:
    if user_error:
        import importlib

        module, _, name = kind.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
            exc = cls(text)
            if isinstance(exc, AetkError):
                return exc
        except Exception:  # an error class that needs more than a message
            pass
        return AetkError(text)
    return AetkError(f"rank 0 failed ({kind.split(':')[-1]}: {text}); see its traceback")
