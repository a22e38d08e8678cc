"""A repulsive wall for MD that is exactly zero on the training data.

Networks trained on totals of liquid frames never see two atoms closer than about 3 A, so
nothing stops them from attracting atoms onto each other in MD (measured: Kr and ArKr
tanh-4 potentials collapse after 5.7 and 6.3 ps at 120 K). A trained potential therefore
carries a Ziegler-Biersack-Littmark screened-nuclear wall (LAMMPS ``pair_style zbl``,
overlaid on ``mliap``) that LAMMPS switches smoothly to zero (energy, force and curvature)
at ``outer``, a margin below the closest pair found in *any* frame of the data set. Every
data frame therefore gets exactly the network's energies, forces and per-atom energies: the
wall changes nothing that was trained or evaluated, and only acts where the network is
extrapolating into overlap. The wall's share of an atom's energy, when it acts, is half of
each of its ZBL pair energies (``compute pe/atom``).

ZBL has one global ``inner``/``outer`` pair in LAMMPS, so the wall starts below the
closest pair of the closest-packed element pair (for Ar/Kr, Ar-Ar) for all pairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

MARGIN = 0.2  # A between the closest data pair and where the wall starts (outer)
WIDTH = 0.5  # A over which LAMMPS switches ZBL on (outer - inner)
REACH = 5.0  # A searched for the closest pairs


class WallError(ValueError):
    pass


@dataclass(frozen=True)
class RepulsiveWall:
    """ZBL between ``inner`` and ``outer`` (A), full ZBL (shifted) below ``inner``."""

    inner: float
    outer: float
    closest: dict[str, float]  # closest distance per element pair in the data, "Ar-Kr": A

    def __post_init__(self) -> None:
        if not 0.0 < self.inner < self.outer:
            raise WallError(f"repulsive wall needs 0 < inner < outer, got {self.inner}, "
                            f"{self.outer}")

    def pair_style(self) -> str:
        return f"zbl {self.inner!r} {self.outer!r}"

    def pair_coeffs(self, elements: Sequence[str]) -> list[str]:
        """``pair_coeff i j zbl Z_i Z_j`` for every type pair (type i+1 = elements[i])."""
        lines = []
        for i, j in itertools.combinations_with_replacement(range(len(elements)), 2):
            zi, zj = atomic_numbers[elements[i]], atomic_numbers[elements[j]]
            lines.append(f"pair_coeff {i + 1} {j + 1} zbl {zi}.0 {zj}.0")
        return lines

    def to_dict(self) -> dict:
        return {"style": "zbl", "inner": self.inner, "outer": self.outer,
                "closest_pairs_in_data": dict(self.closest),
                "note": "zero for every pair farther than outer, so on all data frames"}

    @classmethod
    def from_dict(cls, data: dict | None) -> RepulsiveWall | None:
        if data is None:
            return None
        if data.get("style") != "zbl":
            raise WallError(f"unknown repulsive wall style {data.get('style')!r}")
        return cls(float(data["inner"]), float(data["outer"]),
                   dict(data.get("closest_pairs_in_data", {})))


def pair_key(a: str, b: str, elements: Sequence[str]) -> str:
    first, second = sorted((a, b), key=list(elements).index)
    return f"{first}-{second}"


def closest_pairs(frames: Iterable[Atoms], elements: Sequence[str]) -> dict[str, float]:
    """Closest distance (A, minimum image) of every element pair over all ``frames``."""
    from ase.neighborlist import neighbor_list

    closest: dict[str, float] = {}
    for atoms in frames:
        i, j, d = neighbor_list("ijd", atoms, REACH)
        if len(d) == 0:
            continue
        symbols = np.asarray(atoms.get_chemical_symbols())
        for a, b in itertools.combinations_with_replacement(sorted(set(symbols)), 2):
            mask = ((symbols[i] == a) & (symbols[j] == b)) | ((symbols[i] == b) & (symbols[j] == a))
            if mask.any():
                key = pair_key(a, b, elements)
                closest[key] = min(closest.get(key, np.inf), float(d[mask].min()))
    return closest


def wall_for(frames: Sequence[Atoms], elements: Sequence[str], margin: float = MARGIN,
             width: float = WIDTH) -> RepulsiveWall:
    """The wall for data ``frames``: ``outer`` = closest pair - ``margin``."""
    closest = closest_pairs(frames, elements)
    if not closest:
        raise WallError(f"no two atoms closer than {REACH} A in any frame; a wall cannot be "
                        "placed below the data (train without it: --no-wall)")
    outer = min(closest.values()) - margin
    if outer - width <= 0.5:
        raise WallError(f"closest pair {min(closest.values()):.3f} A: the data holds "
                        "overlapping atoms, so no wall fits below it (--no-wall)")
    return RepulsiveWall(round(outer - width, 4), round(outer, 4), closest)


def merge(walls: Iterable[RepulsiveWall | None]) -> RepulsiveWall | None:
    """One wall for networks from several sources: below every source's data.

    None when no source has a wall. A mix is refused: a source without a wall says
    nothing about how close its data came, so no merged wall can promise to stay below it.
    """
    walls = list(walls)
    present = [w for w in walls if w is not None]
    if not present:
        return None
    if len(present) != len(walls):
        raise WallError("some sources have a repulsive wall and some do not; no wall can be "
                        "placed below the data of those without")
    closest: dict[str, float] = {}
    for wall in present:
        for key, value in wall.closest.items():
            closest[key] = min(closest.get(key, np.inf), value)
    return RepulsiveWall(min(w.inner for w in present), min(w.outer for w in present), closest)
