"""Fallbacks for machines that have torch and numpy but nothing else (e.g. a GPU node).

Training (``toolkit.models``), descriptor bundles (``toolkit.bundle``) and sweeps run there
from a bundle, without LAMMPS, ASE, mpi4py or tqdm. This module gives them
- :func:`world_comm`: MPI's ``COMM_WORLD`` when mpi4py imports, else a one-rank stand-in;
- :func:`progress_bar`: a tqdm bar when tqdm imports, else a silent object with its methods.
"""

from __future__ import annotations

from typing import Any


class SerialComm:
    """The few ``mpi4py`` communicator methods the toolkit uses, for a single process."""

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


def world_comm():
    """``MPI.COMM_WORLD``, or a :class:`SerialComm` where mpi4py is not installed."""
    try:
        from toolkit.lammps import world_comm as mpi_world
        return mpi_world()
    except ImportError:
        return SerialComm()


class _SilentBar:
    """What the toolkit calls on a tqdm bar, doing nothing (tqdm is not installed)."""

    def __init__(self, *args, **kwargs) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args, **kwargs) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> _SilentBar:
        return self

    def __exit__(self, *exc) -> None:
        return None


def progress_bar(*args, **kwargs):
    """``tqdm(*args, **kwargs)``, or a silent stand-in where tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _SilentBar(*args, **kwargs)
    return tqdm(*args, **kwargs)
