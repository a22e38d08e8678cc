"""SNAP bispectrum descriptors of frames, computed through LAMMPS (``compute sna/atom``)
and cached by content hash.

The spec itself, its defaults and why they were chosen live in
:mod:`toolkit.descriptor_spec` (re-exported here): the one source of truth for both the
training descriptors computed here and the ML-IAP descriptor file of exported potentials.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.data import atomic_write_text, frames_hash, validate_frames
from toolkit.descriptor_spec import (  # noqa: F401  (re-exported: the public place)
    Descriptors,
    DescriptorSpec,
    SpecError,
    read_spec,
)
from toolkit.lammps import Lammps
from toolkit.parallel import allgather_dict, is_rank0, serial, share_indices
from toolkit.progress import progress as progress_bar

DESCRIPTOR_VERSION = 1  # bump when the way descriptors are computed changes (cache key)


def write_mliap_descriptor(spec: DescriptorSpec, path: str | Path) -> None:
    atomic_write_text(path, spec.mliap_descriptor_text())


# -- computing descriptors -----------------------------------------------------------------
class DescriptorSession:
    """One LAMMPS instance that computes ``compute sna/atom`` for frame after frame."""

    def __init__(self, spec: DescriptorSpec, comm=None):
        self.spec = spec
        self._shape: tuple | None = None
        self.lmp = Lammps(comm=comm if comm is not None else serial())
        self.lmp.setup_box(spec.elements)
        self.lmp.commands(
            [
                f"pair_style zero {spec.cutoff!r}",
                "pair_coeff * *",
                "neighbor 1.0 bin",
                spec.compute_command("sna"),
            ]
        )

    def __enter__(self) -> DescriptorSession:
        return self

    def __exit__(self, *exc) -> None:
        self.lmp.close()

    def compute(self, atoms: Atoms) -> np.ndarray:
        """Descriptors of one frame, (natoms, n_descriptors), rows in the frame's atom order."""
        shape = (len(atoms), tuple(np.diag(atoms.cell.array).round(12)))
        if self._shape is not None and shape != self._shape:
            # LAMMPS 2025.7.22: after the box (or atom count) changes between frames, compute
            # sna/atom's occasional neighbour list gives wrong descriptors for many atoms
            # (measured: up to 6.5 on perfect crystals); a fresh compute is exact, and frames
            # of one MD run (one box) keep the old path (tests/test_invariant.py)
            self.lmp.commands(["uncompute sna", self.spec.compute_command("sna")])
        self._shape = shape
        self.lmp.load_atoms(atoms, self.spec.type_of)
        self.lmp.command("run 0 post no")
        return self.lmp.gather("c_sna", self.spec.n_descriptors)


def compute_descriptors(
    frames: Sequence[Atoms],
    spec: DescriptorSpec,
    *,
    source: str | Path | None = None,
    cache: bool = True,
    progress: bool = True,
    comm=None,
) -> Descriptors:
    """Per-atom SNAP descriptors of ``frames`` through LAMMPS, with an on-disk cache.

    Under ``mpirun`` pass ``comm=COMM_WORLD``: frames are shared out over ranks (one
    LAMMPS instance per rank) and every rank gets the full result.
    """
    validate_frames(frames, source, require=(), cutoff=spec.cutoff, species=spec.elements)
    key = descriptor_cache_key(frames, spec)
    path = cache_dir() / f"{key}.npz"
    if cache and path.is_file():
        stored = np.load(path)
        return Descriptors(stored["values"], stored["frame_index"], stored["species_index"], spec)

    rank0 = is_rank0(comm)
    results = {}
    with DescriptorSession(spec) as session:
        for index in progress_bar(share_indices(len(frames), comm), desc="descriptors",
                                  unit="frame", enabled=progress and rank0):
            results[index] = session.compute(frames[index])
    results = allgather_dict(results, comm)

    values = np.concatenate([results[i] for i in range(len(frames))])
    frame_index = np.concatenate(
        [np.full(len(atoms), i, dtype=np.int64) for i, atoms in enumerate(frames)]
    )
    species_index = np.concatenate(
        [[spec.type_of(s) - 1 for s in atoms.get_chemical_symbols()] for atoms in frames]
    ).astype(np.int64)
    result = Descriptors(values, frame_index, species_index, spec)
    if cache and rank0:
        _save_npz_atomically(path, values=values, frame_index=frame_index,
                             species_index=species_index)
    return result


def descriptor_cache_key(frames: Sequence[Atoms], spec: DescriptorSpec) -> str:
    from lammps import __version__ as lammps_version

    text = f"{DESCRIPTOR_VERSION}:{lammps_version}:{spec.key}:{frames_hash(frames)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cache_dir() -> Path:
    """``$AETK_CACHE`` or ``~/.cache/aetk``, subfolder ``descriptors``."""
    root = Path(os.environ.get("AETK_CACHE", Path.home() / ".cache" / "aetk"))
    return root / "descriptors"


def _save_npz_atomically(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def summary(descriptors: Descriptors) -> str:
    """A few lines: counts per species, and range/mean/std of each descriptor block."""
    spec = descriptors.spec
    lines = [
        f"SNAP twojmax={spec.twojmax} ({spec.n_descriptors} components), cutoff "
        f"{spec.cutoff:.3f} A, rfac0={spec.rfac0}, rmin0={spec.rmin0}",
        "elements: "
        + ", ".join(f"{e} (R={r}, w={w})" for e, r, w in zip(spec.elements, spec.radii,
                                                              spec.weights, strict=True)),
        f"frames: {descriptors.n_frames}, atoms: {len(descriptors.values)}",
    ]
    for s, symbol in enumerate(spec.elements):
        block = descriptors.values[descriptors.species_index == s]
        if not len(block):
            continue
        std = block.std(axis=0)
        lines.append(
            f"  {symbol}: {len(block)} atoms; |B| mean {np.abs(block).mean():.4g}, "
            f"per-component std min {std.min():.3g} / median {np.median(std):.3g} / max "
            f"{std.max():.3g}; constant components: {int(np.sum(std < 1e-12))}"
        )
    return "\n".join(lines)
