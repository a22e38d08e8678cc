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

Each element pair gets its own wall (one ``zbl`` sub-style per pair, each with its own
``inner``/``outer``): ``outer`` sits ``MARGIN`` below the closest pair of *that* element
pair in the data, so a Kr-Kr pair is stopped below the closest Kr-Kr distance ever seen,
not below the closer-packed Ar-Ar one. An element pair absent from the data (Kr-Kr in pure
Ar frames) gets the lowest wall of the pairs that are present.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from toolkit.errors import AetkError

MARGIN = 0.2  # A between the closest data pair and where the wall starts (outer)
WIDTH = 0.5  # A over which LAMMPS switches ZBL on (outer - inner)
REACH = 5.0  # A searched for the closest pairs



class WallError(AetkError, ValueError):
    pass


@dataclass(frozen=True)
class RepulsiveWall:
    """ZBL per element pair: zero beyond ``outer``, switched on down to ``inner``, full below.

    ``cutoffs``: element pair ("Ar-Kr", in the spec's element order) -> (inner, outer), A.
    ``closest``: closest distance per element pair in the data, A.
    """

    cutoffs: dict[str, tuple[float, float]]
    closest: dict[str, float]

    def __post_init__(self) -> None:
        if not self.cutoffs:
            raise WallError("repulsive wall without any element pair")
        for key, (inner, outer) in self.cutoffs.items():
            if not 0.0 < inner < outer:
                raise WallError(f"repulsive wall {key} needs 0 < inner < outer, got {inner}, "
                                f"{outer}")

    def cutoff(self, a: str, b: str, elements: Sequence[str]) -> tuple[float, float]:
        key = pair_key(a, b, elements)
        if key not in self.cutoffs:
            raise WallError(f"the repulsive wall has no {key} pair (it has "
                            f"{', '.join(self.cutoffs)})")
        return self.cutoffs[key]

    def pair_style(self, elements: Sequence[str]) -> str:
        """One ``zbl inner outer`` sub-style per element pair, in ``pair_coeffs`` order."""
        return " ".join("zbl {!r} {!r}".format(*self.cutoffs[key])
                        for _, _, key in element_pairs(elements))

    def pair_coeffs(self, elements: Sequence[str]) -> list[str]:
        """``pair_coeff i j zbl K Z_i Z_j`` (type i+1 = elements[i], K-th zbl sub-style)."""
        pairs = element_pairs(elements)
        lines = []
        for k, (i, j, _) in enumerate(pairs, start=1):
            zi, zj = atomic_numbers[elements[i]], atomic_numbers[elements[j]]
            instance = f" {k}" if len(pairs) > 1 else ""  # LAMMPS numbers repeated sub-styles
            lines.append(f"pair_coeff {i + 1} {j + 1} zbl{instance} {zi}.0 {zj}.0")
        return lines

    def to_dict(self) -> dict:
        return {"style": "zbl",
                "pairs": {k: {"inner": i, "outer": o} for k, (i, o) in self.cutoffs.items()},
                "closest_pairs_in_data": dict(self.closest),
                "note": "zero for every pair farther than its outer, so on all data frames"}

    @classmethod
    def from_dict(cls, data: dict | None, elements: Sequence[str]) -> RepulsiveWall | None:
        if data is None:
            return None
        if data.get("style") != "zbl":
            raise WallError(f"unknown repulsive wall style {data.get('style')!r}")
        if "pairs" in data:
            cutoffs = {k: (float(v["inner"]), float(v["outer"]))
                       for k, v in data["pairs"].items()}
        else:  # one wall for all pairs (potentials written before per-pair walls)
            both = (float(data["inner"]), float(data["outer"]))
            cutoffs = {key: both for _, _, key in element_pairs(elements)}
        return cls(cutoffs, dict(data.get("closest_pairs_in_data", {})))


def pair_key(a: str, b: str, elements: Sequence[str]) -> str:
    first, second = sorted((a, b), key=list(elements).index)
    return f"{first}-{second}"


def element_pairs(elements: Sequence[str]) -> list[tuple[int, int, str]]:
    """Every element pair as (i, j, key), i <= j: LAMMPS types i+1, j+1; the order of the
    ``zbl`` sub-styles."""
    return [(i, j, pair_key(elements[i], elements[j], elements))
            for i, j in itertools.combinations_with_replacement(range(len(elements)), 2)]


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
    """The wall for data ``frames``: per element pair, ``outer`` = its closest pair - ``margin``.

    Pairs absent from the data get the lowest ``outer`` of those present.
    """
    closest = closest_pairs(frames, elements)
    if not closest:
        raise WallError(f"no two atoms closer than {REACH} A in any frame; a wall cannot be "
                        "placed below the data (train without it: --no-wall)")
    outers = {key: d - margin for key, d in closest.items()}
    lowest_key = min(outers, key=outers.get)
    cutoffs = {}
    for _, _, key in element_pairs(elements):
        # a pair absent from the data takes the lowest wall, so it is judged by that pair
        source = key if key in outers else lowest_key
        outer = outers[source]
        if outer - width <= 0.5:
            taken = "" if source == key else f" (the {key} wall is taken from it: no {key} " \
                "pair in the data)"
            raise WallError(f"closest {source} pair {closest[source]:.3f} A{taken}: the data "
                            "holds overlapping atoms, so no wall fits below it; check the "
                            "frames or train without a wall (--no-wall)")
        cutoffs[key] = (round(outer - width, 4), round(outer, 4))
    return RepulsiveWall(cutoffs, closest)


def merge(walls: Iterable[RepulsiveWall | None],
          names: Sequence[str] | None = None) -> RepulsiveWall | None:
    """One wall for networks from several sources: below every source's data.

    Per element pair the lowest wall of the sources whose data held that pair (a pure-Ar
    source says nothing about Kr-Kr); pairs no source saw get the lowest wall of all.
    None when no source has a wall. A mix is refused: a source without a wall says
    nothing about how close its data came, so no merged wall can promise to stay below it;
    ``names`` (one per wall, e.g. the source directories) name the wall-less ones.
    """
    walls = list(walls)
    present = [w for w in walls if w is not None]
    if not present:
        return None
    if len(present) != len(walls):
        bare = ", ".join(sorted(str(n) for n, w in zip(names, walls, strict=True)
                                if w is None)) if names else ""
        raise WallError("some sources have a repulsive wall and some do not"
                        + (f"; {bare}: no repulsive wall" if bare else "")
                        + "; no wall can be placed below the data of those without: re-export "
                        "them with a wall (aetk fit/export without --no-wall) or assemble "
                        "without walls (--no-wall)")
    closest: dict[str, float] = {}
    cutoffs: dict[str, tuple[float, float]] = {}
    for wall in present:  # pairs a source saw in its data: the lowest of those walls
        for key, value in wall.closest.items():
            closest[key] = min(closest.get(key, np.inf), value)
            low_inner, low_outer = cutoffs.get(key, (np.inf, np.inf))
            inner, outer = wall.cutoffs[key]
            cutoffs[key] = (min(low_inner, inner), min(low_outer, outer))
    keys = {key for wall in present for key in wall.cutoffs}
    if not cutoffs:  # no source recorded its data's pairs: the lowest of every wall
        cutoffs = {key: min((w.cutoffs[key] for w in present if key in w.cutoffs),
                            key=lambda c: c[1]) for key in keys}
    lowest = min(cutoffs.values(), key=lambda c: c[1])
    # pairs no source saw (Ar-Kr from pure Ar + pure Kr): the lowest wall, as in wall_for
    return RepulsiveWall({key: cutoffs.get(key, lowest) for key in sorted(keys)}, closest)
