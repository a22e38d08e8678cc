"""Frames: ASE extxyz read/write, validation, content hashes and train/validation/test splits.

Convention (all in LAMMPS ``metal`` units):
- ``atoms.info['energy']``: total potential energy, eV;
- ``atoms.arrays['forces']``: eV/A;
- ``atoms.arrays['local_energy']``: reference per-atom energies, eV, summing to the total;
- ``atoms.info['stress']`` (optional): 6 Voigt components xx yy zz yz xz xy, eV/A^3, ASE sign
  (positive under tension).
ASE's reader moves ``energy``/``forces``/``stress`` (and e.g. ``charges``) into a
SinglePointCalculator; the reader here moves them back so the rest of the toolkit sees one
layout and nothing a file carries is dropped.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from toolkit.errors import FrameError  # noqa: F401  (re-exported)
from toolkit.species import ELEMENTS

if TYPE_CHECKING:  # ASE is imported where frames are read: training from descriptor
    from ase import Atoms  # bundles (toolkit/bundle.py) runs where ASE is not installed

# Closer than this (A) two noble-gas atoms are unphysical (the LJ wall is ~3 A); such
# a frame is almost always a unit or wrapping mistake.
MIN_DISTANCE = 1.5




def _where(path: str | Path | None, index: int | None) -> str:
    parts = [str(path) if path else "<frames>"]
    if index is not None:
        parts.append(f"frame {index}")
    return ", ".join(parts)


def read_frames(path: str | Path) -> list[Atoms]:
    """Read every frame of an extxyz file into the toolkit's layout (see module doc)."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FrameError(f"{path}: no such file; pass an extxyz file made by `aetk generate`")
    try:
        # parallel=False: under mpirun ASE would otherwise read on rank 0 only and broadcast,
        # so ranks reading *different* files would all get rank 0's frames
        frames = ase.io.read(path, index=":", format="extxyz", parallel=False)
    except Exception as exc:  # ASE raises many types for malformed text
        raise FrameError(
            f"{path}: not a readable extended-XYZ file ({type(exc).__name__}: {exc}); "
            "check the atom-count and Properties= header lines"
        ) from None
    if not frames:
        raise FrameError(f"{path}: contains no frames")
    for atoms in frames:
        _move_calculator_results_to_info(atoms)
    return frames


def _move_calculator_results_to_info(atoms: Atoms) -> None:
    calc = atoms.calc
    if calc is None:
        return
    results = getattr(calc, "results", {})
    if "energy" in results:
        atoms.info["energy"] = float(results["energy"])
    if "forces" in results:
        atoms.arrays["forces"] = np.array(results["forces"], dtype=np.float64)
    if "stress" in results:
        stress = np.array(results["stress"], dtype=np.float64)
        if stress.size == 9:
            from ase.stress import full_3x3_to_voigt_6_stress

            stress = full_3x3_to_voigt_6_stress(stress.reshape(3, 3))
        atoms.info["stress"] = stress.reshape(-1)
    # everything else ASE routed to its calculator (e.g. a "charge" column becomes the result
    # "charges") is kept under ASE's name: per-atom values as a column, the rest in info
    for key, value in results.items():
        if key in ("energy", "forces", "stress"):
            continue
        array = np.asarray(value)
        if array.ndim >= 1 and len(array) == len(atoms):
            atoms.arrays[key] = array.copy()
        else:
            atoms.info[key] = value
    atoms.calc = None


def write_frames(path: str | Path, frames: Sequence[Atoms]) -> None:
    """Write frames as extxyz, atomically (temp file + rename), floats at full precision.

    ASE's own writer rounds per-atom columns to 8 decimals, which breaks the 1e-8 eV sum
    rule of local energies and byte-exact round trips; this writer prints every float
    as its shortest exact repr and is readable by ASE, OVITO and this module.
    """
    atomic_write_text(path, "".join(_extxyz_frame(atoms) for atoms in frames))


def _extxyz_frame(atoms: Atoms) -> str:
    from ase.io.extxyz import key_val_dict_to_str

    columns = [("species", "S", 1, np.array(atoms.get_chemical_symbols(), dtype=object)),
               ("pos", "R", 3, atoms.positions)]
    names = [k for k in atoms.arrays if k not in ("numbers", "positions")]
    names.sort(key=lambda k: k != "forces")  # forces first, for the same reason as below
    for name in names:
        values = np.asarray(atoms.arrays[name])
        width = 1 if values.ndim == 1 else values.shape[1]
        kind = "I" if values.dtype.kind in "iu" else "R"
        columns.append((name, kind, width, values))
    lattice = " ".join(repr(float(x)) for x in atoms.cell.array.reshape(-1))
    properties = ":".join(f"{name}:{kind}:{width}" for name, kind, width, _ in columns)
    # energy and stress first: reading moves them through ASE's calculator and back, so a
    # fixed order keeps write -> read -> write byte-identical
    first = [k for k in ("energy", "stress") if k in atoms.info]
    info = {k: atoms.info[k] for k in first + [k for k in atoms.info if k not in first]}
    if "stress" in info:  # extxyz stores stress as the full 3x3 matrix
        from ase.stress import voigt_6_to_full_3x3_stress

        info["stress"] = voigt_6_to_full_3x3_stress(np.asarray(info["stress"])).reshape(-1)
    info["pbc"] = atoms.get_pbc()
    header = f'Lattice="{lattice}" Properties={properties} {key_val_dict_to_str(info)}'
    lines = [str(len(atoms)), header]
    for i in range(len(atoms)):
        fields = []
        for _, kind, width, values in columns:
            row = values[i] if width == 1 else values[i, :width]
            for value in np.atleast_1d(row):
                if kind == "R":
                    fields.append(repr(float(value)))
                else:
                    fields.append(str(value))
        lines.append(" ".join(fields))
    return "\n".join(lines) + "\n"


def default_mode(directory: bool = False) -> int:
    """Permissions a plain ``open``/``mkdir`` would give under the current umask.

    ``tempfile`` creates private files (0600) and directories (0700); renamed into place
    they would stay private, so group members on a cluster could not read models or data.
    """
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- validation ----------------------------------------------------------------------------
def validate_frames(
    frames: Sequence[Atoms],
    path: str | Path | None = None,
    *,
    require: Sequence[str] = ("energy",),
    cutoff: float | None = None,
    species: Sequence[str] | None = None,
) -> None:
    """Raise :class:`FrameError` for the first unusable frame.

    Every number a frame carries is checked for NaN/inf, required or not: positions, every
    per-atom numeric column (``forces``, ``local_energy``, any other), and every numeric
    ``info`` value (``energy``, ``stress``, ...).
    ``require`` names fields that must be present: ``energy``, ``forces``, ``local_energy``.
    ``cutoff`` (A): every periodic box length must be at least twice this.
    ``species``: allowed elements (default: the elements with classical reference data, Ar
    and Kr; every model path passes its spec's elements, which may be any).
    """
    allowed = set(species) if species is not None else set(ELEMENTS)
    for index, atoms in enumerate(frames):
        where = _where(path, index)
        _check_species(atoms, allowed, where)
        _check_cell(atoms, where, cutoff)
        _check_positions(atoms, where)
        _check_finite(atoms, where)
        _check_labels(atoms, where, require)


def _check_species(atoms: Atoms, allowed: set[str], where: str) -> None:
    unknown = sorted(set(atoms.get_chemical_symbols()) - allowed)
    if unknown:
        raise FrameError(
            f"{where}: unknown element(s) {unknown}; allowed are {sorted(allowed)} "
            "(a model or descriptor spec only covers the elements it was made for)"
        )


def _check_cell(atoms: Atoms, where: str, cutoff: float | None) -> None:
    if not all(atoms.pbc):
        raise FrameError(f"{where}: not periodic in all directions; set pbc=True (bulk liquid)")
    cell = atoms.cell.array
    if not np.all(np.isfinite(cell)) or atoms.cell.volume <= 0:
        raise FrameError(f"{where}: the cell is missing or degenerate; write Lattice= in the file")
    if np.any(np.abs(cell - np.diag(np.diag(cell))) > 1e-10):
        raise FrameError(
            f"{where}: non-orthogonal cell; this toolkit handles orthorhombic boxes only"
        )
    if cutoff is not None:
        shortest = float(np.min(np.diag(cell)))
        if shortest < 2.0 * cutoff:
            raise FrameError(
                f"{where}: box length {shortest:.3f} A is shorter than twice the cutoff "
                f"({2 * cutoff:.3f} A); use a bigger box (e.g. `aetk generate --atoms 256`) "
                "or a smaller descriptor cutoff"
            )


def _check_positions(atoms: Atoms, where: str) -> None:
    positions = atoms.positions
    if not np.all(np.isfinite(positions)):
        bad = int(np.argwhere(~np.isfinite(positions))[0, 0])
        raise FrameError(f"{where}: atom {bad} has a NaN/inf coordinate; regenerate the frame")
    if len(atoms) > 1:
        from ase.neighborlist import neighbor_list

        i, j, d = neighbor_list("ijd", atoms, MIN_DISTANCE)
        if len(d):
            k = int(np.argmin(d))
            raise FrameError(
                f"{where}: atoms {i[k]} and {j[k]} are {d[k]:.3f} A apart (below "
                f"{MIN_DISTANCE} A); positions are probably not in Angstrom or were "
                "wrapped wrongly"
            )


def _numeric(value: object) -> np.ndarray | None:
    """``value`` as a float array if it is a number or an array of numbers, else None."""
    if isinstance(value, bool | str | bytes) or value is None:
        return None
    array = np.asarray(value)
    return array.astype(np.float64) if array.dtype.kind in "fiuc" else None


def _check_finite(atoms: Atoms, where: str) -> None:
    """Every per-atom column and ``info`` number must be finite; names the first bad one."""
    fix = ("the file is damaged or was written by a failed calculation; recompute this frame "
           "or drop it")
    for name, values in atoms.arrays.items():
        if name in ("numbers", "positions"):
            continue  # integers; positions have their own check
        array = _numeric(values)
        if array is not None and not np.all(np.isfinite(array)):
            atom = int(np.argwhere(~np.isfinite(array.reshape(len(array), -1)))[0, 0])
            raise FrameError(f"{where}: per-atom '{name}' of atom {atom} is "
                             f"{array.reshape(len(array), -1)[atom].tolist()}, not finite; {fix}")
    for name, value in atoms.info.items():
        array = _numeric(value)
        if array is not None and not np.all(np.isfinite(array)):
            shown = array.tolist() if array.ndim else float(array)
            raise FrameError(f"{where}: {name}={shown} is not finite; {fix}")


def _check_labels(atoms: Atoms, where: str, require: Sequence[str]) -> None:
    n = len(atoms)
    for name in require:
        if name == "energy":
            if "energy" not in atoms.info:
                raise FrameError(
                    f"{where}: no total energy; write energy=<eV> in the comment line"
                )
            if not np.isfinite(float(atoms.info["energy"])):
                raise FrameError(f"{where}: total energy is NaN/inf")
        else:
            if name not in atoms.arrays:
                raise FrameError(
                    f"{where}: no per-atom '{name}' column; add it to Properties= "
                    "(frames from `aetk generate` have it)"
                )
            values = atoms.arrays[name]
            if values.shape[0] != n or not np.all(np.isfinite(values)):
                raise FrameError(f"{where}: per-atom '{name}' has NaN/inf or a wrong length")
    if "local_energy" in require and "energy" in require:
        total = float(np.sum(atoms.arrays["local_energy"]))
        energy = float(atoms.info["energy"])
        if abs(total - energy) > 1e-6 * max(1.0, abs(energy)):
            raise FrameError(
                f"{where}: local energies sum to {total:.8f} eV but energy={energy:.8f} eV; "
                "a partition must add up to its total"
            )


# -- identity and splits -------------------------------------------------------------------
def frames_hash(frames: Sequence[Atoms]) -> str:
    """Content hash of the structures (species, cell, positions), not of the labels."""
    digest = hashlib.sha256()
    for atoms in frames:
        digest.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(atoms.cell.array, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(atoms.positions, dtype=np.float64).tobytes())
    return digest.hexdigest()


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def as_dict(self) -> dict[str, list[int]]:
        return {k: getattr(self, k).tolist() for k in ("train", "validation", "test")}


def split_frames(
    n_frames: int, seed: int, validation: float = 0.1, test: float = 0.2
) -> Split:
    """Random split of frame indices, fixed by ``seed``; each part sorted."""
    if n_frames < 3:
        raise FrameError(f"need at least 3 frames to split train/validation/test, got {n_frames}")
    order = np.random.default_rng(seed).permutation(n_frames)
    n_test = max(1, int(round(test * n_frames)))
    n_val = max(1, int(round(validation * n_frames)))
    if n_test + n_val >= n_frames:
        raise FrameError(f"{n_frames} frames leave no training frames at these fractions")
    return Split(
        train=np.sort(order[n_test + n_val :]),
        validation=np.sort(order[n_test : n_test + n_val]),
        test=np.sort(order[:n_test]),
    )


SPLIT_MODES = ("random", "trajectory")


def split_by_trajectory(trajectories: Sequence[str], seed: int, validation: float = 0.1,
                        test: float = 0.2) -> Split:
    """Test frames = whole trajectories, so no test frame shares a trajectory with a training
    frame; validation = ``validation`` times the number of all frames, drawn at random from
    the frames outside the test trajectories.

    Trajectories (``atoms.info["trajectory"]``, one label per frame) are taken in an order
    fixed by ``seed`` until the test set holds at least 3/4 of the ``test`` fraction, skipping
    any that would leave less than half of the frames for training and validation (so with
    one dominant trajectory the test set can stay below that; the sweep records ``n_test``).
    """
    labels = np.asarray([str(t) for t in trajectories])
    names, counts = np.unique(labels, return_counts=True)
    if len(names) < 2:
        raise FrameError(f"{len(names)} trajectory ({names.tolist()}): a trajectory split needs "
                         "more than one; use --split random or frames from more independent "
                         "runs")
    rng = np.random.default_rng(seed)
    chosen, held = [], 0
    for k in rng.permutation(len(names)):
        if held >= 0.75 * test * len(labels):
            break
        if held + counts[k] <= 0.5 * len(labels):
            chosen.append(names[k])
            held += counts[k]
    if not chosen:  # every trajectory is over half of the data: hold out the smallest
        chosen = [names[int(np.argmin(counts))]]
    in_test = np.isin(labels, chosen)
    test_frames = np.flatnonzero(in_test)
    rest = rng.permutation(np.flatnonzero(~in_test))
    n_val = max(1, int(round(validation * len(labels))))
    if n_val >= len(rest):
        raise FrameError("too few frames outside the test trajectories to train")
    return Split(train=np.sort(rest[n_val:]), validation=np.sort(rest[:n_val]),
                 test=np.sort(test_frames))


def frame_trajectories(frames: Sequence[Atoms], path: str | Path | None = None) -> list[str]:
    """The ``trajectory`` label of every frame (refused in one line where one is missing)."""
    labels = []
    for index, atoms in enumerate(frames):
        if "trajectory" not in atoms.info:
            raise FrameError(f"{_where(path, index)}: no trajectory= label, which a trajectory "
                             "split needs (frames of the DFT campaign carry it); use --split "
                             "random")
        labels.append(str(atoms.info["trajectory"]))
    return labels


def make_split(frames: Sequence[Atoms], seed: int, mode: str = "random",
               path: str | Path | None = None) -> Split:
    """The 70/10/20 random split, or the trajectory split (:func:`split_by_trajectory`)."""
    if mode == "random":
        return split_frames(len(frames), seed)
    if mode == "trajectory":
        return split_by_trajectory(frame_trajectories(frames, path), seed)
    raise FrameError(f"split mode {mode!r}: choose from {SPLIT_MODES}")
