"""Which atomic energies can totals determine? Gauge directions and gauge-invariant scores.

A model E = sum_i e_i trained on totals (and forces) cannot see any change delta_i of the
atomic energies with sum_i delta_i = 0 in every configuration. Two families are exact:

1. **species constants** at fixed composition: delta_i = c_s(i) (only their composition-
   weighted sum shows in totals; the aligned score already removes both constants);
2. **cross-pair transfers** in a mixture of A and B: for any function psi of the A-B pair
   distance, delta_i = + sum over B neighbours j of psi(r_ij) for an A atom i and
   delta_j = - sum over A neighbours i of psi(r_ij) for a B atom j. Every A-B pair moves
   psi(r) of energy from its B atom to its A atom, so every total, every force and every
   stress is unchanged, in every configuration and composition. psi is as local as the
   descriptor, so a network can drift along it freely.

Decomposition of a model's error delta = predicted - reference (eV per atom), by nested
orthogonal projections (so the shares add up to 1):

- *constants*: the per-species means of delta (what the aligned score removes);
- *transfer*: the least-squares projection of the rest onto the cross-pair transfer basis
  (species-centred): psi(r) = sum_k a_k phi_k(r) with piecewise-linear hat functions phi_k
  on knots from the closest cross pair in the frames to the descriptor's cross-pair cutoff
  rcutfac (R_A + R_B), where psi is forced to 0 (the model sees no pair beyond it). The
  fitted psi is the energy per A-B pair the model gives to A in excess of the reference;
- *rest*: what no gauge move explains: the model's physics error.

Scores (all against the same reference local energies):

- ``r2`` raw; ``r2_aligned`` after the constants, against each species' own mean;
- ``r2_gauge`` (gauge-projected): R2 of the gauge-invariant parts, i.e. of predicted and
  reference after projecting out constants and transfers: 1 - |P delta|^2 / |P ref|^2. A
  prediction that equals the reference up to a gauge move scores 1; one that predicts only
  the species means scores 0. ``identifiable_share`` = |P ref|^2 / within-species SS says how
  much of the reference's own variation totals can determine at all;
- ``r2_frame_centred``: both centred per frame and species (insensitive to anything that is
  one number per frame and species).

The *symmetric control* projects the same rest (after constants) onto the same radial
functions added to *both* atoms of each pair (not a gauge: totals change). It shows how much
a generic radial, pairwise correction would explain; if the decomposition is right, errors
that are transfers are attributed to the transfer family, not to the control.

Single-species frames have no cross pairs: only the constants family applies (asking for
transfers there is an error). With more than two species every cross pair type gets its own psi.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from toolkit.descriptor_spec import DescriptorSpec
from toolkit.errors import AetkError

N_KNOTS = 12  # hat functions per cross pair type (psi at 12 distances)


class GaugeError(AetkError, ValueError):
    """The gauge decomposition cannot be done as asked (no cross pairs, no labels, ...)."""


# -- geometry ---------------------------------------------------------------------------------
@dataclass
class PairList:
    """Pairs i < j within ``cutoff`` of a list of frames (minimum image, orthorhombic).

    Atom indices are global: atoms of all frames concatenated in frame order.
    """

    i: np.ndarray  # (n_pairs,) int64
    j: np.ndarray
    r: np.ndarray  # (n_pairs,) A
    frame: np.ndarray  # (n_pairs,) frame of the pair
    n_atoms: int
    cutoff: float


def pair_list(frames: Sequence, cutoff: float, chunk: int = 64) -> PairList:
    """All pairs closer than ``cutoff`` (A), frames vectorised in chunks of equal size.

    Frames must be orthorhombic and periodic with every box length at least twice the
    cutoff (the toolkit's frame validation ensures it for the descriptor cutoff), so the
    minimum image is the only image within the cutoff.
    """
    ii, jj, rr, ff = [], [], [], []
    offset = 0
    start = 0
    frames = list(frames)
    while start < len(frames):
        n = len(frames[start])
        stop = start
        while stop < len(frames) and stop - start < chunk and len(frames[stop]) == n:
            stop += 1
        block = frames[start:stop]
        pos = np.stack([a.positions for a in block])  # (b, n, 3)
        box = np.stack([np.diag(a.cell.array) for a in block])  # (b, 3)
        if np.any(box < 2.0 * cutoff - 1e-9):
            raise GaugeError(f"a box of {box.min():.3f} A is shorter than twice the pair "
                             f"cutoff {cutoff:.3f} A; use bigger boxes")
        iu, ju = np.triu_indices(n, k=1)
        d = pos[:, ju] - pos[:, iu]  # (b, n_pairs, 3)
        d -= box[:, None, :] * np.rint(d / box[:, None, :])
        r = np.sqrt(np.einsum("bpk,bpk->bp", d, d))
        b, p = np.nonzero(r < cutoff)
        ii.append(offset + b * n + iu[p])
        jj.append(offset + b * n + ju[p])
        rr.append(r[b, p])
        ff.append(start + b)
        offset += n * len(block)
        start = stop
    return PairList(_cat(ii, np.int64), _cat(jj, np.int64), _cat(rr, np.float64),
                    _cat(ff, np.int64), offset, float(cutoff))


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


# -- the radial basis -------------------------------------------------------------------------
@dataclass(frozen=True)
class TransferBasis:
    """Hat functions over the cross-pair distance, one set per cross pair type (A, B).

    ``knots[(A, B)]``: distances (A) where psi is a free number; psi is 0 at
    ``cutoffs[(A, B)]`` (the descriptor's cross-pair cutoff) and constant below the first
    knot. A is the element that comes first in the spec.
    """

    knots: dict[tuple[str, str], np.ndarray]
    cutoffs: dict[tuple[str, str], float]

    @property
    def pair_types(self) -> list[tuple[str, str]]:
        return list(self.knots)

    @property
    def size(self) -> int:
        return sum(len(k) for k in self.knots.values())

    def hats(self, pair_type: tuple[str, str], r: np.ndarray) -> np.ndarray:
        """(len(r), n_knots): phi_k(r), linear between knots, 0 from the cutoff on."""
        knots = self.knots[pair_type]
        nodes = np.append(knots, self.cutoffs[pair_type])
        x = np.clip(r, nodes[0], nodes[-1])
        out = np.zeros((len(r), len(knots)))
        for k in range(len(knots)):
            unit = np.zeros(len(nodes))
            unit[k] = 1.0
            out[:, k] = np.interp(x, nodes, unit)
        return out

    def psi(self, pair_type: tuple[str, str], coefficients: np.ndarray,
            r: np.ndarray) -> np.ndarray:
        return self.hats(pair_type, np.asarray(r, dtype=float)) @ coefficients

    def to_dict(self) -> dict:
        return {f"{a}-{b}": {"knots_A": self.knots[(a, b)].tolist(),
                             "cutoff_A": self.cutoffs[(a, b)]} for a, b in self.knots}


def cross_pair_types(spec: DescriptorSpec, present: set[str]) -> list[tuple[str, str]]:
    """Cross-species pair types among the elements present, in spec order."""
    elements = [e for e in spec.elements if e in present]
    return list(itertools.combinations(elements, 2))


def pair_cutoff(spec: DescriptorSpec, a: str, b: str) -> float:
    """The descriptor's cutoff of an a-b pair, rcutfac (R_a + R_b), A."""
    radius = dict(zip(spec.elements, spec.radii, strict=True))
    return spec.rcutfac * (radius[a] + radius[b])


def transfer_basis(spec: DescriptorSpec, frames: Sequence, n_knots: int = N_KNOTS,
                   pairs: PairList | None = None) -> TransferBasis:
    """The basis for ``frames``: knots evenly from the closest cross pair (rounded down to
    0.05 A) to the descriptor's cross-pair cutoff (exclusive)."""
    present = {s for atoms in frames for s in atoms.get_chemical_symbols()}
    types = cross_pair_types(spec, present)
    if not types:
        raise GaugeError(f"the frames hold one species only ({sorted(present)}): there are no "
                         "cross-species pairs, so no cross-pair transfer to decompose; use "
                         "--no-transfer (constants only)")
    pairs = pairs or pair_list(frames, spec.cutoff)
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    knots, cutoffs = {}, {}
    for a, b in types:
        cut = pair_cutoff(spec, a, b)
        mask = _type_mask(symbols, pairs, a, b) & (pairs.r < cut)
        if not mask.any():
            raise GaugeError(f"no {a}-{b} pair closer than the descriptor's {a}-{b} cutoff "
                             f"{cut:.3f} A in these frames")
        low = np.floor(pairs.r[mask].min() / 0.05) * 0.05
        knots[(a, b)] = np.linspace(low, cut, n_knots + 1)[:-1]
        cutoffs[(a, b)] = cut
    return TransferBasis(knots, cutoffs)


def _type_mask(symbols: np.ndarray, pairs: PairList, a: str, b: str) -> np.ndarray:
    si, sj = symbols[pairs.i], symbols[pairs.j]
    return ((si == a) & (sj == b)) | ((si == b) & (sj == a))


def transfer_columns(basis: TransferBasis, pairs: PairList, symbols: np.ndarray,
                     symmetric: bool = False) -> np.ndarray:
    """(n_atoms, basis.size): the change of every atomic energy per unit coefficient.

    A-B pair at r: +phi_k(r) to its A atom, -phi_k(r) to its B atom (``symmetric``: + to
    both, the control). Rows sum to zero over each frame unless ``symmetric``.
    """
    out = np.zeros((pairs.n_atoms, basis.size))
    column = 0
    for a, b in basis.pair_types:
        mask = _type_mask(symbols, pairs, a, b) & (pairs.r < basis.cutoffs[(a, b)])
        i, j, r = pairs.i[mask], pairs.j[mask], pairs.r[mask]
        first_is_a = symbols[i] == a
        atom_a = np.where(first_is_a, i, j)
        atom_b = np.where(first_is_a, j, i)
        phi = basis.hats((a, b), r)
        width = phi.shape[1]
        block = out[:, column:column + width]
        np.add.at(block, atom_a, phi)
        np.add.at(block, atom_b, phi if symmetric else -phi)
        out[:, column:column + width] = block
        column += width
    return out


def move_along_transfer(frames: Sequence, local_energy: np.ndarray, spec: DescriptorSpec,
                        psi) -> np.ndarray:
    """``local_energy`` with psi(r) (a callable, eV) of every A-B pair within the
    descriptor's A-B cutoff moved from its B atom to its A atom (A before B in the spec).

    Exactly a gauge move: every frame's sum is unchanged (to rounding), for any psi.
    """
    pairs = pair_list(frames, spec.cutoff)
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    present = set(symbols.tolist())
    moved = np.array(local_energy, dtype=float)
    for a, b in cross_pair_types(spec, present):
        mask = _type_mask(symbols, pairs, a, b) & (pairs.r < pair_cutoff(spec, a, b))
        i, j = pairs.i[mask], pairs.j[mask]
        first_is_a = symbols[i] == a
        amount = np.asarray(psi(pairs.r[mask]), dtype=float)
        np.add.at(moved, np.where(first_is_a, i, j), amount)
        np.add.at(moved, np.where(first_is_a, j, i), -amount)
    return moved


# -- the decomposition ------------------------------------------------------------------------
@dataclass
class GaugeReport:
    """Scores and error shares of one prediction; psi per cross pair type (eV at knots)."""

    n_atoms: int
    r2: float
    r2_aligned: float
    r2_gauge: float
    r2_frame_centred: float
    identifiable_share: float  # of the reference's within-species sum of squares
    share_constants: float  # of the error's sum of squares
    share_transfer: float
    share_rest: float
    share_symmetric_control: float  # of the error: the symmetric radial control, alone
    rmse: float  # eV
    rmse_gauge: float  # eV, of the error left after removing both gauge families
    offsets: dict[str, float]  # eV, per-species mean error
    psi: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    basis: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    def scores(self) -> dict[str, float]:
        return {"local_r2": self.r2, "local_r2_aligned": self.r2_aligned,
                "local_r2_gauge": self.r2_gauge, "local_r2_frame_centred": self.r2_frame_centred,
                "gauge_share_constants": self.share_constants,
                "gauge_share_transfer": self.share_transfer,
                "gauge_share_rest": self.share_rest,
                "gauge_share_symmetric": self.share_symmetric_control}


class GaugeProjector:
    """Projections onto the gauge directions of one set of frames, built once.

    Reuse it for many predictions of the same frames (every member of a sweep).
    """

    def __init__(self, frames: Sequence, spec: DescriptorSpec, transfer: bool | None = None,
                 n_knots: int = N_KNOTS):
        frames = list(frames)
        self.spec = spec
        self.symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
        self.frame = np.concatenate([np.full(len(a), k) for k, a in enumerate(frames)])
        present = set(self.symbols.tolist())
        unknown = present - set(spec.elements)
        if unknown:
            raise GaugeError(f"elements {sorted(unknown)} are not in the descriptor spec "
                             f"{list(spec.elements)}")
        self.species = np.array([spec.elements.index(s) for s in self.symbols])
        self.elements = [e for e in spec.elements if e in present]
        mixture = len(cross_pair_types(spec, present)) > 0
        if transfer is None:
            transfer = mixture
        if transfer and not mixture:
            raise GaugeError(f"the frames hold one species only ({sorted(present)}): there are "
                             "no cross-species pairs, so cross-pair transfers do not exist; "
                             "decompose constants only (--no-transfer)")
        self.transfer = transfer
        self.constants = np.stack([self.species == spec.elements.index(e)
                                   for e in self.elements], axis=1).astype(float)
        if transfer:
            self.pairs = pair_list(frames, spec.cutoff)
            self.basis = transfer_basis(spec, frames, n_knots, self.pairs)
            g = transfer_columns(self.basis, self.pairs, self.symbols)
            s = transfer_columns(self.basis, self.pairs, self.symbols, symmetric=True)
            self._g = self._species_centred(g)
            self._s = self._species_centred(s)
            self._g_raw = g
            self._qg, self._rg, self._keep_g = _orthonormal(self._g)
            self._qs, _, _ = _orthonormal(self._s)
        else:
            self.basis = None

    def _species_centred(self, columns: np.ndarray) -> np.ndarray:
        out = columns.copy()
        for k in range(self.constants.shape[1]):
            mask = self.constants[:, k] > 0
            out[mask] -= out[mask].mean(axis=0)
        return out

    def _constants_part(self, values: np.ndarray) -> np.ndarray:
        part = np.zeros_like(values)
        for k in range(self.constants.shape[1]):
            mask = self.constants[:, k] > 0
            part[mask] = values[mask].mean()
        return part

    def invariant_part(self, values: np.ndarray) -> np.ndarray:
        """``values`` with both gauge families projected out (the identifiable part)."""
        rest = values - self._constants_part(values)
        if self.transfer:
            rest = rest - self._qg @ (self._qg.T @ rest)
        return rest

    def decompose(self, reference: np.ndarray, predicted: np.ndarray) -> GaugeReport:
        reference = np.asarray(reference, dtype=float)
        predicted = np.asarray(predicted, dtype=float)
        if reference.shape != self.symbols.shape or predicted.shape != self.symbols.shape:
            raise GaugeError(f"{len(reference)} reference and {len(predicted)} predicted "
                             f"energies for {len(self.symbols)} atoms")
        if not (np.all(np.isfinite(reference)) and np.all(np.isfinite(predicted))):
            raise GaugeError("local energies contain NaN/inf")
        error = predicted - reference
        constants = self._constants_part(error)
        after_constants = error - constants
        transfer = np.zeros_like(error)
        symmetric = np.zeros_like(error)
        psi = {}
        if self.transfer:
            transfer = self._qg @ (self._qg.T @ after_constants)
            symmetric = self._qs @ (self._qs.T @ after_constants)
            coefficients = np.zeros(self._g.shape[1])
            solved, *_ = np.linalg.lstsq(self._g[:, self._keep_g], transfer, rcond=None)
            coefficients[self._keep_g] = solved
            psi = self._psi_table(coefficients)
        rest = after_constants - transfer
        total_ss = float(error @ error)
        reference_within = reference - self._constants_part(reference)
        within_ss = float(reference_within @ reference_within)
        invariant_reference = self.invariant_part(reference)
        invariant_ss = float(invariant_reference @ invariant_reference)
        centred_ref = _frame_species_centred(reference, self.frame, self.species)
        centred_err = _frame_species_centred(error, self.frame, self.species)
        reference_ss = float(np.sum((reference - reference.mean()) ** 2))
        return GaugeReport(
            n_atoms=len(error),
            r2=1.0 - ratio(total_ss, reference_ss),
            r2_aligned=1.0 - ratio(float(after_constants @ after_constants), within_ss),
            r2_gauge=1.0 - ratio(float(rest @ rest), invariant_ss),
            r2_frame_centred=1.0 - ratio(float(centred_err @ centred_err),
                                         float(centred_ref @ centred_ref)),
            identifiable_share=ratio(invariant_ss, within_ss),
            share_constants=ratio(float(constants @ constants), total_ss),
            share_transfer=ratio(float(transfer @ transfer), total_ss),
            share_rest=ratio(float(rest @ rest), total_ss),
            share_symmetric_control=ratio(float(symmetric @ symmetric), total_ss),
            rmse=float(np.sqrt(np.mean(error**2))),
            rmse_gauge=float(np.sqrt(np.mean(rest**2))),
            offsets={e: float(constants[self.species == self.spec.elements.index(e)][0])
                     for e in self.elements},
            psi=psi,
            basis=self.basis.to_dict() if self.basis is not None else {},
        )

    def _psi_table(self, coefficients: np.ndarray) -> dict[str, dict[str, list[float]]]:
        """psi at the knots and how many pairs support each knot (hat-weighted)."""
        table = {}
        column = 0
        support = self._support()
        for a, b in self.basis.pair_types:
            knots = self.basis.knots[(a, b)]
            coef = coefficients[column:column + len(knots)]
            table[f"{a}-{b}"] = {"r_A": knots.tolist(), "psi_eV": coef.tolist(),
                                 "pairs": support[column:column + len(knots)].tolist()}
            column += len(knots)
        return table

    def _support(self) -> np.ndarray:
        """Hat-weighted number of cross pairs per knot (how well psi is determined there)."""
        if not hasattr(self, "_support_cache"):
            out = []
            for a, b in self.basis.pair_types:
                mask = _type_mask(self.symbols, self.pairs, a, b) & (
                    self.pairs.r < self.basis.cutoffs[(a, b)])
                out.append(self.basis.hats((a, b), self.pairs.r[mask]).sum(axis=0))
            self._support_cache = np.concatenate(out)
        return self._support_cache


def ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def _orthonormal(columns: np.ndarray, tol: float = 1e-10
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal basis of the column space (SVD; columns without pairs are dropped)."""
    norms = np.linalg.norm(columns, axis=0)
    keep = norms > tol * max(1.0, float(norms.max(initial=0.0)))
    if not keep.any():
        return np.zeros((columns.shape[0], 0)), np.zeros(0), keep
    u, singular, _ = np.linalg.svd(columns[:, keep], full_matrices=False)
    rank = singular > tol * singular.max()
    return u[:, rank], singular, keep


def _frame_species_centred(values: np.ndarray, frame: np.ndarray,
                           species: np.ndarray) -> np.ndarray:
    key = frame * (species.max() + 1) + species
    _, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    counts = np.bincount(inverse)
    return values - (sums / counts)[inverse]


def gauge_decomposition(frames: Sequence, reference: np.ndarray, predicted: np.ndarray,
                        spec: DescriptorSpec, transfer: bool | None = None,
                        n_knots: int = N_KNOTS) -> GaugeReport:
    """Decompose ``predicted - reference`` (eV per atom, frames' atoms concatenated).

    ``transfer``: decompose cross-pair transfers too (default: when the frames hold more
    than one species; asking for it on single-species frames is a :class:`GaugeError`).
    """
    return GaugeProjector(frames, spec, transfer, n_knots).decompose(reference, predicted)


def psi_rows(report: GaugeReport) -> list[dict]:
    """The fitted transfer as table rows: pair type, r (A), psi (meV), supporting pairs."""
    rows = []
    for pair_type, table in report.psi.items():
        for r, psi, n in zip(table["r_A"], table["psi_eV"], table["pairs"], strict=True):
            rows.append({"pair": pair_type, "r_A": r, "psi_meV": 1e3 * psi, "pairs": n})
    return rows
