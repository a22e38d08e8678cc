"""The SNAP descriptor spec and the per-atom descriptor container (numpy only: no LAMMPS,
no ASE, so training can run where neither is installed).

The :class:`DescriptorSpec` is the single source of truth: it fills LAMMPS's
``compute sna/atom`` (for training data) and writes the ML-IAP ``descriptor sna`` file
(for the exported potential), so a model always sees the descriptors it was trained on.

Defaults, for liquid Ar/Kr at 120 K (justified in the README):
- ``twojmax = 6``: 30 bispectrum components (the paper's "4D bispectrum" family);
- radii sigma_i / 2 and ``rcutfac 1.45``: pair cutoffs 1.45 sigma_ij (4.92 A Ar-Ar,
  5.09 A Ar-Kr, 5.26 A Kr-Kr). The classical reference is cut at 1.6 sigma_ij; a
  descriptor cutoff equal to it (1.6) was the first choice, but the representability
  search (docs/emergence.md: 84 specs, 6 references) found 1.45 better than 1.6 for every
  system and as good as 1.4: mean linear ceiling 0.991 against 0.970 at 1.6 (mixture 0.982
  against 0.946), at the same cost. The shell it leaves out holds pair energies of at most
  4.2 % of epsilon (force-shifted LJ at 1.45 sigma), while the tighter cutoff spends the
  bispectrum's radial resolution on the first shell, where the energy varies;
- weights Ar 1.0, Kr sqrt(C6_Kr / C6_Ar) (see :func:`toolkit.species.snap_weight`), so Ar
  and Kr neighbours differ in every environment;
- ``rfac0 0.99363``, ``rmin0 0``, ``switchflag 1``, ``bzeroflag 1`` (LAMMPS/FitSNAP defaults).

Reference points off the atoms (CEMT, see toolkit/points/ and docs/reference_points.md): a
spec may carry ``points``, extra :class:`PointType` species after the elements (bond
centres of one element pair, or grid points). Each is an extra LAMMPS atom type with its own
SNAP radius and SNAP weight 0: a point's neighbour density holds the real atoms within
rcutfac (R_point + R_element), and no atom or point ever sees a point. Models index
``spec.species`` (elements, then point types); for a spec without points ``species`` equals
``elements`` and everything (dict, TOML, hash, LAMMPS text) is exactly what it was before
points existed.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from toolkit.config import build
from toolkit.errors import AetkError
from toolkit.species import element, snap_weight


class SpecError(AetkError, ValueError):
    pass


def default_radius(symbol: str) -> float:
    """Documented default SNAP radius R (A) of an element; pair cutoffs are rcutfac (R_i + R_j).

    Ar, Kr: sigma_i / 2, so rcutfac (R_i + R_j) = rcutfac sigma_ij (see module doc). Si: see
    :data:`SILICON_RADIUS`. Any other element must have its radius in the spec.
    """
    if symbol in ("Ar", "Kr"):
        return round(element(symbol).lj_sigma / 2, 6)
    if symbol in OTHER_DEFAULTS:
        return OTHER_DEFAULTS[symbol][0]
    raise _no_default(symbol, "radius")


def default_weight(symbol: str) -> float:
    """Documented default SNAP neighbour weight of an element (Ar 1, Kr sqrt(C6_Kr/C6_Ar))."""
    if symbol == "Ar":
        return 1.0
    if symbol == "Kr":
        return round(snap_weight("Kr"), 4)
    if symbol in OTHER_DEFAULTS:
        return OTHER_DEFAULTS[symbol][1]
    raise _no_default(symbol, "weight")


def _no_default(symbol: str, what: str) -> SpecError:
    element(symbol)  # not an element at all: say that instead
    known = sorted({"Ar", "Kr", *OTHER_DEFAULTS})
    return SpecError(
        f"descriptor spec: element {symbol} has no {what} and no default one (defaults exist "
        f"for {', '.join(known)}); give radii = [...] and weights = [...], one per element, in "
        "the spec's [descriptor] table (e.g. aetk fit --spec spec.toml)")


# Silicon, for the Stillinger-Weber / Tersoff studies (docs/invariant_points.md): R = 1.45 A
# gives a 4.205 A pair cutoff at the default rcutfac 1.45: past SW's 3.771 A and Tersoff's
# 3.2 A reference cutoffs and diamond's second shell (3.84 A at a = 5.431 A), short of its
# third (4.50 A). Representability ceilings of SW local energies on crystal, liquid and
# amorphous frames were flat in R from 1.31 to 1.55 A and lower at 1.72 A (the study's
# `ceilings` stage). Weight 1: one element, so only the scale matters.
SILICON_RADIUS = 1.45
OTHER_DEFAULTS: dict[str, tuple[float, float]] = {"Si": (SILICON_RADIUS, 1.0)}


POINT_KINDS = ("bond", "grid")


def _from_dict(cls, data, source: str):
    """``cls`` from a plain dict through :func:`toolkit.config.build` (unknown and missing
    keys refused by name); every refusal is a :class:`SpecError` that names ``source``."""
    if isinstance(data, cls):
        return data
    try:
        return build(cls, data, source)
    except AetkError as exc:
        text = str(exc)
        raise SpecError(text if text.startswith(source) else f"{source}: {text}") from None


@dataclass(frozen=True)
class PointType:
    """A species of reference points off the atoms, and how LAMMPS sees it.

    ``kind == "bond"``: one point at the minimum-image midpoint of every pair of elements
    ``pair`` closer than ``bond_cutoff`` (A); ``name`` is conventionally ``"Ar-Kr"``.
    ``kind == "grid"``: a regular grid of round(L / ``spacing``) points per box edge (A), at
    (i / n) L along each axis (the placement of LAMMPS ``compute sna/grid``).
    ``radius`` (A) is the point's SNAP radius R_P: it sees element c within
    rcutfac (R_P + R_c). Its SNAP weight is always 0 (nobody sees a point).
    """

    name: str
    kind: str
    radius: float
    pair: tuple[str, ...] = ()
    bond_cutoff: float = 0.0
    spacing: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "pair", tuple(self.pair))
        object.__setattr__(self, "radius", float(self.radius))
        object.__setattr__(self, "bond_cutoff", float(self.bond_cutoff))
        object.__setattr__(self, "spacing", float(self.spacing))
        where = f"point type {self.name!r}"
        if self.kind not in POINT_KINDS:
            raise SpecError(f"{where}: kind {self.kind!r} is not one of {POINT_KINDS}")
        if not self.name or any(c.isspace() for c in self.name):
            raise SpecError(f"{where}: the name must be non-empty without spaces")
        if not (np.isfinite(self.radius) and self.radius > 0):
            raise SpecError(f"{where}: radius must be positive (A)")
        if self.kind == "bond":
            if len(self.pair) != 2 or not self.bond_cutoff > 0 or self.spacing:
                raise SpecError(f"{where}: a bond type needs pair = [A, B] and bond_cutoff > 0 "
                                "(A), and no spacing")
        elif self.pair or self.bond_cutoff or not self.spacing > 0:
            raise SpecError(f"{where}: a grid type needs spacing > 0 (A), and no pair or "
                            "bond_cutoff")

    def to_dict(self) -> dict:
        data = {"name": self.name, "kind": self.kind, "radius": self.radius}
        if self.kind == "bond":
            data.update(pair=list(self.pair), bond_cutoff=self.bond_cutoff)
        else:
            data["spacing"] = self.spacing
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "point type") -> PointType:
        return _from_dict(cls, data, source)


@dataclass(frozen=True)
class DescriptorSpec:
    """SNAP descriptor settings shared by every model that must work together."""

    twojmax: int = 6
    rcutfac: float = 1.45
    rfac0: float = 0.99363
    rmin0: float = 0.0
    elements: tuple[str, ...] = ("Ar", "Kr")
    # None: each element's documented default (default_radius, default_weight)
    radii: tuple[float, ...] | None = None
    weights: tuple[float, ...] | None = None
    switchflag: int = 1
    bzeroflag: int = 1
    points: tuple[PointType, ...] = ()  # reference points off the atoms (see module doc)

    def __post_init__(self) -> None:
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "points", tuple(
            PointType.from_dict(p, f"descriptor spec point {k}")
            for k, p in enumerate(self.points)))
        for symbol in self.elements:
            element(symbol)
        if self.radii is None:
            object.__setattr__(self, "radii", tuple(default_radius(s) for s in self.elements))
        if self.weights is None:
            object.__setattr__(self, "weights", tuple(default_weight(s) for s in self.elements))
        object.__setattr__(self, "radii", tuple(float(r) for r in self.radii))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if len(set(self.elements)) != len(self.elements):
            raise SpecError(f"descriptor spec: elements {list(self.elements)} repeat an element")
        if self.switchflag not in (0, 1) or self.bzeroflag not in (0, 1):
            raise SpecError("descriptor spec: switchflag and bzeroflag must be 0 or 1")
        if not (len(self.elements) == len(self.radii) == len(self.weights)) or not self.elements:
            raise SpecError("descriptor spec: elements, radii and weights need one entry each")
        if self.twojmax < 0 or self.twojmax > 16:
            raise SpecError(f"descriptor spec: twojmax {self.twojmax} outside 0..16")
        if self.rcutfac <= 0 or any(r <= 0 for r in self.radii):
            raise SpecError("descriptor spec: rcutfac and radii must be positive")
        if not 0 < self.rfac0 <= 1:
            raise SpecError("descriptor spec: rfac0 must be in (0, 1]")
        if any(not np.isfinite(w) for w in self.weights):
            raise SpecError("descriptor spec: weights must be finite")
        names = [p.name for p in self.points]
        if len(set(names)) != len(names) or set(names) & set(self.elements):
            raise SpecError(f"descriptor spec: point type names {names} must be unique and "
                            f"differ from the elements {list(self.elements)}")
        for point in self.points:
            if set(point.pair) - set(self.elements):
                raise SpecError(f"point type {point.name!r}: pair {list(point.pair)} names an "
                                f"element outside the spec {list(self.elements)}")

    # -- derived -------------------------------------------------------------------------
    @property
    def n_descriptors(self) -> int:
        """Number of bispectrum components B_{j1 j2 j} for this twojmax (LAMMPS ordering)."""
        count = 0
        for j1 in range(self.twojmax + 1):
            for j2 in range(j1 + 1):
                for j in range(j1 - j2, min(self.twojmax, j1 + j2) + 1, 2):
                    if j >= j1:
                        count += 1
        return count

    @property
    def cutoff(self) -> float:
        """Largest pair cutoff, A: rcutfac x (R_i + R_j) over element pairs."""
        return self.rcutfac * 2 * max(self.radii)

    @property
    def species(self) -> tuple[str, ...]:
        """What models index: the elements, then the point types' names."""
        return self.elements + tuple(p.name for p in self.points)

    @property
    def n_species(self) -> int:
        return len(self.elements) + len(self.points)

    @property
    def atoms_only(self) -> DescriptorSpec:
        """The same spec without point types (what the atom-centred descriptors use)."""
        return replace(self, points=())

    @property
    def lammps_cutoff(self) -> float:
        """Longest cutoff LAMMPS's sna/atom derives, A: rcutfac x 2 R over every type.

        The pair style's cutoff must reach it, or LAMMPS refuses the compute. Equals
        :attr:`cutoff` without points.
        """
        return self.rcutfac * 2 * max(self.radii + tuple(p.radius for p in self.points))

    def point_reach(self, point: PointType) -> float:
        """How far a point of this type sees, A: rcutfac (R_P + R_c) over the elements c."""
        return self.rcutfac * (point.radius + max(self.radii))

    def type_of(self, symbol: str) -> int:
        """LAMMPS atom type (1-based) of an element or point type, in ``species`` order."""
        try:
            return self.species.index(symbol) + 1
        except ValueError:
            raise SpecError(
                f"element {symbol!r} is not in the descriptor spec {list(self.species)}"
            ) from None

    # -- LAMMPS text ---------------------------------------------------------------------
    def compute_command(self, compute_id: str = "sna") -> str:
        """``compute sna/atom`` over every type: elements, then point types with weight 0."""
        radii = " ".join(f"{r!r}" for r in self.radii + tuple(p.radius for p in self.points))
        weights = " ".join(f"{w!r}" for w in self.weights + (0.0,) * len(self.points))
        return (
            f"compute {compute_id} all sna/atom {self.rcutfac!r} {self.rfac0!r} {self.twojmax} "
            f"{radii} {weights} rmin0 {self.rmin0!r} switchflag {self.switchflag} "
            f"bzeroflag {self.bzeroflag}"
        )

    def mliap_descriptor_text(self) -> str:
        """The ML-IAP ``descriptor sna`` file: same numbers as :meth:`compute_command`."""
        if self.points:
            raise SpecError(
                f"point types {[p.name for p in self.points]} have no LAMMPS pair style "
                "(ML-IAP evaluates atoms only); reference-point models are evaluated in "
                "Python (toolkit.points), or drop the points to export an atom model")
        lines = [
            "# SNAP descriptor for pair_style mliap, written by aetk from its descriptor spec",
            f"rcutfac {self.rcutfac!r}",
            f"twojmax {self.twojmax}",
            f"nelems {len(self.elements)}",
            "elems " + " ".join(self.elements),
            "radelems " + " ".join(f"{r!r}" for r in self.radii),
            "welems " + " ".join(f"{w!r}" for w in self.weights),
            f"rfac0 {self.rfac0!r}",
            f"rmin0 {self.rmin0!r}",
            f"switchflag {self.switchflag}",
            f"bzeroflag {self.bzeroflag}",
        ]
        return "\n".join(lines) + "\n"

    # -- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict:
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if k != "points"}
        if self.points:  # absent otherwise, so atom-only specs keep their dicts and hashes
            data["points"] = [p.to_dict() for p in self.points]
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "descriptor spec") -> DescriptorSpec:
        return _from_dict(cls, data, source)

    def to_toml(self) -> str:
        def value(v):
            if isinstance(v, dict):
                return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
            if isinstance(v, (list, tuple)):
                return "[" + ", ".join(value(x) for x in v) + "]"
            if isinstance(v, str):
                return json.dumps(v)
            return repr(v)

        body = "\n".join(f"{k} = {value(v)}" for k, v in self.to_dict().items())
        return "[descriptor]\n" + body + "\n"

    @property
    def key(self) -> str:
        """Stable hash of the spec, for caches and compatibility checks."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


# Keywords of LAMMPS's SNAP descriptor file (src/ML-IAP/mliap_descriptor_snap.cpp) that the
# toolkit's spec does not carry: accepted only at LAMMPS's default, since compute sna/atom as
# the toolkit calls it (compute_command) would otherwise compute other descriptors.
_MLIAP_DEFAULT_ONLY = {"chemflag": 0, "bnormflag": 0, "wselfallflag": 0, "switchinnerflag": 0}


def parse_mliap_descriptor(text: str, source: str = "descriptor file") -> DescriptorSpec:
    """The spec of a LAMMPS ML-IAP SNAP descriptor file (``descriptor sna FILE``).

    Parsed as LAMMPS reads it: ``#`` comments, one keyword per line, ``elems``/``radelems``/
    ``welems`` with one value per element after ``nelems``; required rcutfac, twojmax,
    nelems, elems, radelems, welems; defaults rfac0 0.99363, rmin0 0, switchflag 1,
    bzeroflag 1. Refused, one line each: keywords of other descriptors (SO3's nmax, lmax,
    alpha), chemflag/bnormflag/wselfallflag/switchinnerflag other than 0, quadraticflag
    (a quadratic SNAP is `model quadratic`, not `nn`), anything LAMMPS itself would refuse.
    """
    values: dict[str, list[str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].replace('"', " ").replace("'", " ").split()
        if not words:
            continue
        key, rest = words[0], words[1:]
        where = f"{source}, line {number}"
        if key in ("nmax", "lmax", "alpha"):
            raise SpecError(f"{where}: '{key}' belongs to the SO3 descriptor (descriptor so3); "
                            "the toolkit imports SNAP descriptors (descriptor sna) only")
        if key in _MLIAP_DEFAULT_ONLY:
            if rest != [str(_MLIAP_DEFAULT_ONLY[key])]:
                raise SpecError(f"{where}: {key} {' '.join(rest)} is not supported (the "
                                f"toolkit's descriptors use {key} {_MLIAP_DEFAULT_ONLY[key]})")
            continue
        if key in ("sinnerelems", "dinnerelems"):
            raise SpecError(f"{where}: {key} (inner switching) is not supported")
        if key == "quadraticflag":
            raise SpecError(f"{where}: quadraticflag is not supported (a quadratic SNAP model "
                            "is `model quadratic`, not `model nn`)")
        known = ("rcutfac", "twojmax", "nelems", "elems", "radelems", "welems", "rfac0",
                 "rmin0", "switchflag", "bzeroflag")
        if key not in known:
            raise SpecError(f"{where}: unknown keyword '{key}' (LAMMPS would refuse it too); "
                            f"a SNAP descriptor file has {', '.join(known)}")
        if key in values:
            raise SpecError(f"{where}: '{key}' given twice")
        per_element = key in ("elems", "radelems", "welems")
        if per_element and "nelems" not in values:
            raise SpecError(f"{where}: '{key}' before 'nelems' (LAMMPS needs nelems first)")
        expected = int(values["nelems"][0]) if per_element else 1
        if len(rest) != expected:
            raise SpecError(f"{where}: '{key}' needs {expected} value(s), got {len(rest)}")
        values[key] = rest
    missing = [k for k in ("rcutfac", "twojmax", "nelems", "elems", "radelems", "welems")
               if k not in values]
    if missing:
        raise SpecError(f"{source}: missing required keyword(s) {missing} of a SNAP "
                        "descriptor file")
    try:
        spec = {
            "rcutfac": float(values["rcutfac"][0]), "twojmax": int(values["twojmax"][0]),
            "elements": tuple(values["elems"]),
            "radii": tuple(float(v) for v in values["radelems"]),
            "weights": tuple(float(v) for v in values["welems"]),
        }
        for key, kind in (("rfac0", float), ("rmin0", float), ("switchflag", int),
                          ("bzeroflag", int)):
            if key in values:
                spec[key] = kind(values[key][0])
    except ValueError as exc:
        raise SpecError(f"{source}: not a number ({exc})") from None
    return DescriptorSpec.from_dict(spec, source=source)


def read_spec(path: str | Path | None) -> DescriptorSpec:
    """Spec from a TOML file (``[descriptor]`` table), or the default for ``None``."""
    if path is None:
        return DescriptorSpec()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{path}: unreadable descriptor spec ({exc})") from None
    if "descriptor" not in data:
        raise SpecError(f"{path}: no [descriptor] table")
    return DescriptorSpec.from_dict(data["descriptor"], source=str(path))


@dataclass
class Descriptors:
    """Per-atom descriptors of a list of frames, atoms in frame order, frames concatenated.

    ``values[k]`` belongs to atom ``k - offsets[frame_index[k]]`` of frame
    ``frame_index[k]``; ``species_index`` indexes ``spec.species`` (the elements, then any
    point types: a row may be a reference point, see toolkit/points).
    """

    values: np.ndarray  # (n_atoms_total, n_descriptors), float64
    frame_index: np.ndarray  # (n_atoms_total,), int64
    species_index: np.ndarray  # (n_atoms_total,), int64
    spec: DescriptorSpec

    @property
    def n_frames(self) -> int:
        return int(self.frame_index.max()) + 1 if len(self.frame_index) else 0

    def of_frame(self, index: int) -> np.ndarray:
        return self.values[self.frame_index == index]

    def frame_rows(self, indices: Sequence[int]) -> np.ndarray:
        """Rows of the frames ``indices``, frame after frame in that order."""
        # one stable sort, then a slice per frame: a mask per frame would cost
        # O(frames x atoms), which is seconds for thousands of frames, once per sweep cell
        order = np.argsort(self.frame_index, kind="stable")
        counts = np.bincount(self.frame_index, minlength=self.n_frames)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        if not len(indices):
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([order[starts[old]:starts[old] + counts[old]] for old in indices])

    def select_frames(self, indices: Sequence[int]) -> Descriptors:
        """Descriptors of a subset of frames, renumbered 0..len(indices)-1 in that order."""
        rows = self.frame_rows(indices)
        counts = np.bincount(self.frame_index, minlength=self.n_frames)
        frame_ids = np.repeat(np.arange(len(indices), dtype=np.int64), counts[list(indices)])
        return Descriptors(self.values[rows], frame_ids, self.species_index[rows], self.spec)


