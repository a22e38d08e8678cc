"""Where reference points sit: bond centres and regular grids in periodic orthorhombic boxes.

Bond centres: for every point type of kind ``bond`` with element pair (a, b), one point at
the minimum-image midpoint of each a-b pair closer than the type's ``bond_cutoff``. Minimum
image is unique only while the cutoff is below half of every box edge, so longer cutoffs are
refused. Grid points: round(L_k / spacing) points along edge k at (i / n_k) L_k, x fastest
(the order and placement of LAMMPS ``compute sna/grid``). Every position is wrapped into
[0, L) (a midpoint of a pair across the box edge lands at the edge it crosses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from toolkit.descriptor_spec import DescriptorSpec, PointType, SpecError


@dataclass
class PointSet:
    """The reference points of one frame, ordered by point type (spec order), then by pair
    (i < j, lexicographic) or by grid index (x fastest)."""

    positions: np.ndarray  # (P, 3) A, in [0, L)
    type_index: np.ndarray  # (P,) index into spec.points
    atoms: np.ndarray  # (P, 2) the two atoms of a bond (frame order), -1 for grid points
    length: np.ndarray  # (P,) bond length, A; NaN for grid points
    grid_shape: dict[int, tuple[int, int, int]]  # grid point types: points per edge

    def __len__(self) -> int:
        return len(self.positions)


def box_lengths(atoms: Atoms) -> np.ndarray:
    """Edges of an orthorhombic periodic box, A; anything else is refused."""
    cell = atoms.cell.array
    if not all(atoms.pbc) or np.any(np.abs(cell - np.diag(np.diag(cell))) > 1e-10):
        raise SpecError("reference points need a periodic orthorhombic box")
    return np.diag(cell).astype(np.float64)


def wrap(positions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions folded into [0, L) per axis. ``np.mod`` may round a tiny negative number up
    to exactly L, which LAMMPS would put outside the box; those go to 0."""
    out = np.mod(positions, lengths)
    out[out >= lengths] = 0.0
    return out


def minimum_image(delta: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return delta - np.rint(delta / lengths) * lengths


def bond_centres(atoms: Atoms, point: PointType) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Midpoints, atom pairs (i < j) and lengths of the ``point.pair`` bonds of a frame."""
    lengths = box_lengths(atoms)
    if point.bond_cutoff >= 0.5 * lengths.min():
        raise SpecError(
            f"bond type {point.name}: bond_cutoff {point.bond_cutoff} A is not below half the "
            f"shortest box edge ({0.5 * lengths.min():.3f} A), so the minimum image is not "
            "unique; use a larger box or a shorter cutoff")
    symbols = np.array(atoms.get_chemical_symbols())
    positions = atoms.get_positions()
    i, j = np.triu_indices(len(atoms), k=1)
    a, b = point.pair
    wanted = ((symbols[i] == a) & (symbols[j] == b)) | ((symbols[i] == b) & (symbols[j] == a))
    i, j = i[wanted], j[wanted]
    delta = minimum_image(positions[j] - positions[i], lengths)
    distance = np.linalg.norm(delta, axis=1)
    inside = distance < point.bond_cutoff
    i, j, delta, distance = i[inside], j[inside], delta[inside], distance[inside]
    centres = wrap(positions[i] + 0.5 * delta, lengths)
    return centres, np.stack([i, j], axis=1), distance


def grid_shape(lengths: np.ndarray, spacing: float) -> tuple[int, int, int]:
    return tuple(max(1, int(round(float(length) / spacing))) for length in lengths)


def grid_positions(lengths: np.ndarray, spacing: float) -> np.ndarray:
    """(nx ny nz, 3) grid points at (i / n) L, x fastest (LAMMPS ``compute sna/grid`` order)."""
    shape = grid_shape(lengths, spacing)
    axes = [np.arange(n) * (length / n) for n, length in zip(shape, lengths, strict=True)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


def place_points(atoms: Atoms, spec: DescriptorSpec) -> PointSet:
    """All reference points of ``spec.points`` in one frame."""
    lengths = box_lengths(atoms)
    parts_pos, parts_type, parts_atoms, parts_len, shapes = [], [], [], [], {}
    for t, point in enumerate(spec.points):
        if point.kind == "bond":
            pos, pairs, length = bond_centres(atoms, point)
        else:
            pos = grid_positions(lengths, point.spacing)
            shapes[t] = grid_shape(lengths, point.spacing)
            pairs = np.full((len(pos), 2), -1, dtype=np.int64)
            length = np.full(len(pos), np.nan)
        parts_pos.append(pos)
        parts_type.append(np.full(len(pos), t, dtype=np.int64))
        parts_atoms.append(pairs.astype(np.int64))
        parts_len.append(length)
    if not parts_pos:
        return PointSet(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros((0, 2), np.int64),
                        np.zeros(0), {})
    return PointSet(np.concatenate(parts_pos), np.concatenate(parts_type),
                    np.concatenate(parts_atoms), np.concatenate(parts_len), shapes)


# -- point types from the atom spec ------------------------------------------------------------
def bond_types(spec: DescriptorSpec, reach: float = 1.1, cutoff_factor: float | None = None,
               ) -> tuple[PointType, ...]:
    """One bond point type per element pair of ``spec`` (``"Ar-Ar"``, ``"Ar-Kr"``, ...).

    ``cutoff_factor`` f: a-b pairs closer than r_b = f (R_a + R_b) get a point (default: the
    descriptor's rcutfac, i.e. pairs within the atoms' own descriptor cutoff).
    ``reach`` lambda: the point's SNAP radius R_P solves rcutfac (R_P + (R_a + R_b) / 2) =
    lambda r_b / 2, so the point sees the two ends of its longest bonds a little inside its
    cutoff (lambda = 1 would put them exactly at the cutoff, where the switching function
    hides them; a much larger reach lets more neighbours of the bond in).
    """
    factor = spec.rcutfac if cutoff_factor is None else float(cutoff_factor)
    out = []
    for m, a in enumerate(spec.elements):
        for n in range(m, len(spec.elements)):
            b = spec.elements[n]
            radii = spec.radii[m] + spec.radii[n]
            bond_cutoff = factor * radii
            radius = reach * bond_cutoff / (2 * spec.rcutfac) - radii / 2
            if not radius > 0:
                raise SpecError(f"bond reach {reach}: the {a}-{b} point radius would be "
                                f"{radius:.3g} A; use a reach above 1")
            out.append(PointType(f"{a}-{b}", "bond", round(radius, 6), pair=(a, b),
                                 bond_cutoff=round(bond_cutoff, 6)))
    return tuple(out)


def grid_type(spec: DescriptorSpec, spacing: float, radius: float | None = None) -> PointType:
    """A grid point type; default radius = the mean element radius, so a grid point sees
    about as far as an atom does."""
    radius = float(np.mean(spec.radii)) if radius is None else float(radius)
    return PointType("grid", "grid", round(radius, 6), spacing=float(spacing))
