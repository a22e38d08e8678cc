"""FitSNAP's own descriptor code as a cross-check of the toolkit's descriptors.

FitSNAP 3.1.0.4 (calculators/lammps_snap.py, ``LammpsSnap._collect_lammps``, the path of a
SNAP fit) runs LAMMPS ``compute snap`` per frame and writes rows into its shared descriptor
array ``a``: with ``bikflag = 0`` one energy row per frame, per type the sum of B over that
type's atoms divided by the frame's atom count N (preceded, when ``bzeroflag = 0``, by that
type's atom fraction); with ``bikflag = 1`` one row per atom, its B in its own type's block,
also divided by N. Per-atom rows need ``bzeroflag = 1`` (FitSNAP raises otherwise).
"""

from __future__ import annotations

import configparser
import contextlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from toolkit.descriptor_spec import Descriptors, DescriptorSpec
from toolkit.interop.fitsnap import FitsnapError, fitsnap_input_text


@dataclass
class FitsnapDescriptors:
    """Descriptors of frames as FitSNAP 3.1.0.4 computes them, in the toolkit's layout.

    ``per_atom`` (n_atoms, D): FitSNAP's bikflag = 1 rows, each atom's own type block,
    times the frame's atom count, by which FitSNAP divides them (None when bzeroflag = 0,
    for which FitSNAP has no per-atom rows);
    ``energy_rows`` (F, T x (D [+ 1])): its bikflag = 0 energy rows, per type block
    (the atom fraction of that type when bzeroflag = 0, then) the sum of B over that
    type's atoms divided by the frame's atom count.
    """

    per_atom: np.ndarray | None
    energy_rows: np.ndarray
    version: str


def _fitsnap_settings(spec: DescriptorSpec, bikflag: int) -> dict:
    """The written input file as FitSNAP's dictionary input, with one bikflag and the
    linear SVD solver, whose descriptor rows are those of a SNAP fit."""
    parser = configparser.ConfigParser(inline_comment_prefixes="#")
    parser.optionxform = str
    parser.read_string(fitsnap_input_text(spec))
    settings = {s: dict(parser.items(s)) for s in parser.sections()}
    settings["BISPECTRUM"]["bikflag"] = str(bikflag)
    settings["CALCULATOR"]["per_atom_energy"] = str(bikflag)
    settings["SOLVER"] = {"solver": "SVD"}
    return settings


def fitsnap_descriptors(frames: Sequence, spec: DescriptorSpec) -> FitsnapDescriptors:
    """Descriptors of ``frames`` from FitSNAP's own LAMMPS calculator, for the input
    :func:`fitsnap_input_text` writes for ``spec``: frames through its ASE scraper, then
    ``FitSnap.process_configs``, the path of a SNAP fit (its rows land in the shared
    descriptor array ``a``)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from toolkit.data import validate_frames
    from toolkit.interop.fitsnap_compat import load

    validate_frames(frames, None, require=(), cutoff=spec.cutoff, species=spec.elements)
    fitsnap = load()
    labelled = []
    for atoms in frames:  # the ASE scraper reads energy, forces and stress from a calculator
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(copy, energy=float(atoms.info.get("energy", 0.0)),
                                          forces=np.zeros((len(atoms), 3)),
                                          stress=np.zeros(6))
        labelled.append(copy)
    rows = {}
    for bikflag in ((1, 0) if spec.bzeroflag else (0,)):
        # FitSNAP prints timings, and seeds with random.randint(float), deprecated
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            instance = fitsnap.FitSnap(_fitsnap_settings(spec, bikflag),
                                       arglist=["--overwrite", "--nofit"])
            instance.process_configs(fitsnap.ase_scraper(labelled))
            rows[bikflag] = np.array(instance.pt.shared_arrays["a"].array)
            del instance
    per_atom = None
    if 1 in rows:
        # one row per atom, its descriptors in its own type's block, divided by the frame's
        # atom count like the energy rows (LammpsSnap._collect_lammps divides every row)
        d, n_types = spec.n_descriptors, len(spec.elements)
        types = np.concatenate([[spec.type_of(s) - 1 for s in atoms.get_chemical_symbols()]
                                for atoms in frames])
        counts = np.concatenate([np.full(len(atoms), len(atoms)) for atoms in frames])
        blocks = (rows[1] * counts[:, None]).reshape(len(types), n_types, d)
        per_atom = blocks[np.arange(len(types)), types].copy()
        blocks[np.arange(len(types)), types] = 0.0
        if np.any(blocks != 0.0):
            raise FitsnapError("FitSNAP's per-atom rows have values outside the atom's type "
                               "block; its layout is not the one this code reads")
    return FitsnapDescriptors(per_atom, rows[0], fitsnap.version)


def energy_rows(descriptors: Descriptors) -> np.ndarray:
    """FitSNAP's bikflag = 0 energy rows built from the toolkit's per-atom descriptors."""
    spec = descriptors.spec
    n_types, d = len(spec.elements), spec.n_descriptors
    width = d + (0 if spec.bzeroflag else 1)
    rows = np.zeros((descriptors.n_frames, n_types, width))
    counts = np.bincount(descriptors.frame_index, minlength=descriptors.n_frames)
    for t in range(n_types):
        mask = descriptors.species_index == t
        block = np.zeros((descriptors.n_frames, d))
        np.add.at(block, descriptors.frame_index[mask], descriptors.values[mask])
        if not spec.bzeroflag:
            rows[:, t, 0] = np.bincount(descriptors.frame_index[mask],
                                        minlength=descriptors.n_frames)
        rows[:, t, width - d:] = block
    return (rows / counts[:, None, None]).reshape(descriptors.n_frames, -1)


@dataclass
class DescriptorCrossCheck:
    """Largest absolute deviations between FitSNAP's and the toolkit's descriptors."""

    frames: int
    atoms: int
    per_atom_max_abs_diff: float | None
    energy_row_max_abs_diff: float
    max_abs_descriptor: float
    fitsnap_version: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def compare_descriptors(fitsnap: FitsnapDescriptors,
                        descriptors: Descriptors) -> DescriptorCrossCheck:
    """Deviations of FitSNAP's descriptors from the toolkit's, on the same frames."""
    per_atom = None
    if fitsnap.per_atom is not None:
        per_atom = float(np.max(np.abs(fitsnap.per_atom - descriptors.values)))
    return DescriptorCrossCheck(
        frames=descriptors.n_frames, atoms=len(descriptors.values),
        per_atom_max_abs_diff=per_atom,
        energy_row_max_abs_diff=float(np.max(np.abs(fitsnap.energy_rows
                                                    - energy_rows(descriptors)))),
        max_abs_descriptor=float(np.max(np.abs(descriptors.values))),
        fitsnap_version=fitsnap.version)


def descriptor_crosscheck(frames: Sequence, spec: DescriptorSpec) -> DescriptorCrossCheck:
    """FitSNAP's descriptors of ``frames`` against the toolkit's ``compute_descriptors``."""
    from toolkit.descriptors import compute_descriptors

    ours = compute_descriptors(frames, spec, cache=False, progress=False)
    return compare_descriptors(fitsnap_descriptors(frames, spec), ours)
