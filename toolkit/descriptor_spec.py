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
  search (docs/emergence.md: 84 specs, 6 references) found 1.45 best for every system:
  mean linear ceiling 0.991 against 0.970 at 1.6 (mixture 0.982 against 0.946), at the same
  cost. The shell it leaves out holds pair energies below 4 % of epsilon (force-shifted LJ
  at 1.45 sigma), while the tighter cutoff spends the bispectrum's radial resolution on
  the first shell, where the energy varies;
- weights Ar 1.0, Kr sqrt(C6_Kr / C6_Ar) (see :func:`toolkit.species.snap_weight`), so Ar
  and Kr neighbours differ in every environment;
- ``rfac0 0.99363``, ``rmin0 0``, ``switchflag 1``, ``bzeroflag 1`` (LAMMPS/FitSNAP defaults).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from toolkit.errors import AetkError
from toolkit.species import element, snap_weight


class SpecError(AetkError, ValueError):
    pass


def _default_weights() -> tuple[float, ...]:
    return (1.0, round(snap_weight("Kr"), 4))


def _default_radii() -> tuple[float, ...]:
    """sigma_i / 2, so rcutfac (R_i + R_j) = rcutfac sigma_ij (see module doc)."""
    return tuple(round(element(s).lj_sigma / 2, 6) for s in ("Ar", "Kr"))


@dataclass(frozen=True)
class DescriptorSpec:
    """SNAP descriptor settings shared by every model that must work together."""

    twojmax: int = 6
    rcutfac: float = 1.45
    rfac0: float = 0.99363
    rmin0: float = 0.0
    elements: tuple[str, ...] = ("Ar", "Kr")
    radii: tuple[float, ...] = field(default_factory=_default_radii)
    weights: tuple[float, ...] = field(default_factory=_default_weights)
    switchflag: int = 1
    bzeroflag: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "radii", tuple(float(r) for r in self.radii))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        for symbol in self.elements:
            element(symbol)
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

    def type_of(self, symbol: str) -> int:
        """LAMMPS atom type (1-based) of an element, in spec order."""
        try:
            return self.elements.index(symbol) + 1
        except ValueError:
            raise SpecError(
                f"element {symbol!r} is not in the descriptor spec {list(self.elements)}"
            ) from None

    # -- LAMMPS text ---------------------------------------------------------------------
    def compute_command(self, compute_id: str = "sna") -> str:
        radii = " ".join(f"{r!r}" for r in self.radii)
        weights = " ".join(f"{w!r}" for w in self.weights)
        return (
            f"compute {compute_id} all sna/atom {self.rcutfac!r} {self.rfac0!r} {self.twojmax} "
            f"{radii} {weights} rmin0 {self.rmin0!r} switchflag {self.switchflag} "
            f"bzeroflag {self.bzeroflag}"
        )

    def mliap_descriptor_text(self) -> str:
        """The ML-IAP ``descriptor sna`` file: same numbers as :meth:`compute_command`."""
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
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict, source: str = "descriptor spec") -> DescriptorSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"{source}: unknown keys {sorted(unknown)}; known are {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise SpecError(f"{source}: {exc}") from None

    def to_toml(self) -> str:
        def value(v):
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
    ``frame_index[k]``; ``species_index`` indexes ``spec.elements``.
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


