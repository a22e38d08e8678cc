"""SNAP descriptors of reference points through LAMMPS: pseudo-atoms with SNAP weight 0.

Each point type of the spec is an extra LAMMPS atom type after the elements. One
``compute sna/atom`` over all atoms and points (:meth:`DescriptorSpec.compute_command`)
gives every row:

- a point's neighbour density holds the real atoms within rcutfac (R_P + R_c), weighted by
  the element weights, so its bispectrum describes the atoms around it;
- its own weight is 0, so it adds exactly 0.0 to every density: real atoms' descriptors are
  those of the atoms alone (tested to 1e-12) and points never see each other. LAMMPS still
  loops over point neighbours; ``neigh_modify exclude`` drops point-point pairs from the
  neighbour list, which matters for fine grids;
- ``pair_style zero`` (cut at the longest SNAP cutoff, which LAMMPS requires) puts no force
  between anything, so points may sit anywhere, close to atoms and to each other.

Rows of a frame: its atoms in frame order (when ``with_atoms``), then its points in
:func:`toolkit.points.placement.place_points` order. Results are cached like atom
descriptors (``$AETK_CACHE``), keyed by frames, spec (with its point types) and LAMMPS version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from tqdm import tqdm

from toolkit.data import frames_hash, validate_frames
from toolkit.descriptor_spec import Descriptors, DescriptorSpec, SpecError
from toolkit.descriptors import _save_npz_atomically, cache_dir
from toolkit.lammps import Lammps, self_comm
from toolkit.points.placement import PointSet, box_lengths, place_points

POINTS_VERSION = 1  # bump when placement or the LAMMPS setup changes (cache key)
SKIN = 1.0  # A, neighbour skin of the session (only run 0, so any value works)


@dataclass
class PointDescriptors:
    """Rows of atoms and/or reference points of a list of frames, with where points sit.

    ``descriptors.species_index`` indexes ``spec.species`` (elements, then point types), so
    the container trains with :func:`toolkit.models.training.train_ensemble` as it is: one
    network per element and per point type, on frame totals.
    """

    descriptors: Descriptors
    is_point: np.ndarray  # (rows,) bool
    positions: np.ndarray  # (rows, 3) A, wrapped
    bond_atoms: np.ndarray  # (rows, 2) atom indices within the frame; -1 for atoms, grids
    bond_length: np.ndarray  # (rows,) A; NaN for atoms and grid points

    @property
    def spec(self) -> DescriptorSpec:
        return self.descriptors.spec

    @property
    def n_frames(self) -> int:
        return self.descriptors.n_frames

    @property
    def frame_index(self) -> np.ndarray:
        return self.descriptors.frame_index

    @property
    def species_index(self) -> np.ndarray:
        return self.descriptors.species_index

    def take(self, rows: np.ndarray) -> PointDescriptors:
        d = self.descriptors
        return PointDescriptors(
            Descriptors(d.values[rows], d.frame_index[rows], d.species_index[rows], d.spec),
            self.is_point[rows], self.positions[rows], self.bond_atoms[rows],
            self.bond_length[rows])

    def rows(self, *, atoms: bool = True, points: bool = True) -> PointDescriptors:
        """Only the atom rows, only the point rows, or both (frames keep their numbers)."""
        keep = (self.is_point & points) | (~self.is_point & atoms)
        return self.take(np.flatnonzero(keep))

    def select_frames(self, indices: Sequence[int]) -> PointDescriptors:
        """Rows of a subset of frames, renumbered 0..len(indices)-1 (as Descriptors does)."""
        out = self.take(frame_rows(self.frame_index, indices))
        counts = np.bincount(self.frame_index, minlength=self.n_frames)
        out.descriptors.frame_index = np.repeat(np.arange(len(indices), dtype=np.int64),
                                                counts[list(indices)])
        return out


def frame_rows(frame_index: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    """Row numbers of the frames ``indices``, frame after frame, rows in their order."""
    order = np.argsort(frame_index, kind="stable")
    counts = np.bincount(frame_index)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if not len(indices):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([order[starts[i]:starts[i] + counts[i]] for i in indices])


class PointSession:
    """One LAMMPS instance computing ``compute sna/atom`` of atoms and points, frame by frame."""

    def __init__(self, spec: DescriptorSpec, comm=None):
        self.spec = spec
        self.lmp = Lammps(comm=comm if comm is not None else self_comm())
        n_el, n_pt = len(spec.elements), len(spec.points)
        self.lmp.setup_box(spec.elements, extra_types=n_pt)
        commands = [f"pair_style zero {spec.lammps_cutoff!r}", "pair_coeff * *",
                    f"neighbor {SKIN!r} bin"]
        if n_pt:
            point_types = range(n_el + 1, n_el + n_pt + 1)
            excluded = " ".join(f"exclude type {p} {q}" for p in point_types
                                for q in point_types if q >= p)
            commands.append(f"neigh_modify {excluded}")
        commands.append(spec.compute_command("sna"))
        self.lmp.commands(commands)
        self._one = 2000  # LAMMPS's default neighbours-per-atom limit

    def __enter__(self) -> PointSession:
        return self

    def __exit__(self, *exc) -> None:
        self.lmp.close()

    def _size_neighbour_pages(self, atoms: Atoms, n_points: int) -> None:
        """Raise LAMMPS's per-atom neighbour limit for dense point sets (fine grids)."""
        volume = float(np.prod(box_lengths(atoms)))
        radius = self.spec.lammps_cutoff + SKIN
        expected = (len(atoms) + n_points) / volume * 4.0 / 3.0 * np.pi * radius**3
        needed = int(2 * expected) + 100
        if needed > self._one:
            self._one = needed
            self.lmp.command(f"neigh_modify one {needed} page {max(100000, 10 * needed)}")

    def compute(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, PointSet]:
        """(atom rows (N, D), point rows (P, D), the points) of one frame."""
        spec = self.spec
        points = place_points(atoms, spec)
        self._size_neighbour_pages(atoms, len(points))
        self.lmp.load_atoms(atoms, spec.type_of)
        n = len(atoms)
        if len(points):
            self.lmp.create_atoms(len(spec.elements) + 1 + points.type_index, points.positions,
                                  ids=range(n + 1, n + len(points) + 1))
        self.lmp.command("run 0 post no")
        values = self.lmp.gather("c_sna", spec.n_descriptors)
        return values[:n], values[n:], points


def compute_point_descriptors(
    frames: Sequence[Atoms],
    spec: DescriptorSpec,
    *,
    with_atoms: bool = True,
    source: str | Path | None = None,
    cache: bool = True,
    progress: bool = True,
    comm=None,
) -> PointDescriptors:
    """Descriptors of the reference points of ``spec.points`` (and of the atoms) of ``frames``.

    Under ``mpirun`` pass ``comm=COMM_WORLD``: frames are shared out over ranks and every
    rank gets the full result.
    """
    if not spec.points:
        raise SpecError("this descriptor spec has no point types; use "
                        "toolkit.descriptors.compute_descriptors for atoms")
    validate_frames(frames, source, require=(), cutoff=spec.cutoff, species=spec.elements)
    key = _cache_key(frames, spec, with_atoms)
    path = cache_dir() / f"points-{key}.npz"
    names = ("values", "frame_index", "species_index", "is_point", "positions", "bond_atoms",
             "bond_length")
    if cache and path.is_file():
        stored = np.load(path)
        arrays = {k: stored[k] for k in names}
        return PointDescriptors(
            Descriptors(arrays["values"], arrays["frame_index"], arrays["species_index"], spec),
            arrays["is_point"], arrays["positions"], arrays["bond_atoms"], arrays["bond_length"])

    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    results = {}
    with PointSession(spec) as session:
        for index in tqdm(range(rank, len(frames), size), desc="point descriptors",
                          unit="frame", disable=not progress or rank):
            results[index] = _frame_rows(frames[index], *session.compute(frames[index]),
                                         spec, with_atoms)
    if comm is not None and size > 1:
        merged = {}
        for part in comm.allgather(results):
            merged.update(part)
        results = merged
    arrays = {k: np.concatenate([results[i][k] for i in range(len(frames))]) for k in names
              if k != "frame_index"}
    arrays["frame_index"] = np.concatenate(
        [np.full(len(results[i]["values"]), i, dtype=np.int64) for i in range(len(frames))])
    if cache and rank == 0:
        _save_npz_atomically(path, **arrays)
    return PointDescriptors(
        Descriptors(arrays["values"], arrays["frame_index"], arrays["species_index"], spec),
        arrays["is_point"], arrays["positions"], arrays["bond_atoms"], arrays["bond_length"])


def _frame_rows(atoms: Atoms, atom_values: np.ndarray, point_values: np.ndarray,
                points: PointSet, spec: DescriptorSpec, with_atoms: bool) -> dict:
    n_el = len(spec.elements)
    parts = {
        "values": [point_values],
        "species_index": [n_el + points.type_index],
        "is_point": [np.ones(len(points), bool)],
        "positions": [points.positions],
        "bond_atoms": [points.atoms],
        "bond_length": [points.length],
    }
    if with_atoms:
        n = len(atoms)
        parts["values"].insert(0, atom_values)
        parts["species_index"].insert(
            0, np.array([spec.type_of(s) - 1 for s in atoms.get_chemical_symbols()]))
        parts["is_point"].insert(0, np.zeros(n, bool))
        parts["positions"].insert(0, atoms.get_positions(wrap=True))
        parts["bond_atoms"].insert(0, np.full((n, 2), -1))
        parts["bond_length"].insert(0, np.full(n, np.nan))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["species_index"] = out["species_index"].astype(np.int64)
    out["bond_atoms"] = out["bond_atoms"].astype(np.int64)
    return out


def _cache_key(frames: Sequence[Atoms], spec: DescriptorSpec, with_atoms: bool) -> str:
    from lammps import __version__ as lammps_version

    text = (f"{POINTS_VERSION}:{lammps_version}:{spec.key}:{frames_hash(frames)}:"
            f"{int(with_atoms)}")
    return hashlib.sha256(text.encode()).hexdigest()[:32]
