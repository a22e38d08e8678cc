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
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
                         "--transfer no (constants only)")
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
    # of the error left after the constants (the aligned error): transfer, symmetric control
    aligned_share_transfer: float
    aligned_share_symmetric: float
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
                "gauge_share_symmetric": self.share_symmetric_control,
                "aligned_share_transfer": self.aligned_share_transfer,
                "aligned_share_symmetric": self.aligned_share_symmetric}


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
                             "decompose constants only (--transfer no)")
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
            aligned_share_transfer=ratio(float(transfer @ transfer),
                                         float(after_constants @ after_constants)),
            aligned_share_symmetric=ratio(float(symmetric @ symmetric),
                                          float(after_constants @ after_constants)),
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


# -- scores of trained ensembles (sweeps, fits) ------------------------------------------------
GAUGE_COLUMNS = ["local_r2_gauge", "local_r2_frame_centred", "gauge_share_constants",
                 "gauge_share_transfer", "gauge_share_symmetric", "aligned_share_transfer",
                 "aligned_share_symmetric", "identifiable_share"]


def lpr_columns(spec: DescriptorSpec) -> list[str]:
    return [f"lpr_{element}" for element in spec.elements]


class DatasetGauge:
    """Gauge projector and rigidity inputs of one data set's split, built once per data set."""

    def __init__(self, dataset, frames: Sequence[int] | None = None):
        self.dataset = dataset
        self.frames = list(dataset.split.test if frames is None else frames)
        # frames with ASE, or a descriptor bundle's test-frame structures (toolkit/bundle.py;
        # frames it does not hold leave the gauge columns NaN, LPR is kept)
        held = dataset.structures or {}
        test_frames = ([dataset.frames[f] for f in self.frames] if dataset.frames is not None
                       else [held.get(int(f)) for f in self.frames])
        self.has_local = (dataset.local_energies is not None
                          and all(a is not None for a in test_frames))
        self.projector = GaugeProjector(test_frames, dataset.descriptors.spec) \
            if self.has_local else None
        # descriptor rows of a frame are its atoms in order (as the structures hold them)
        self.reference = (dataset.local_energies[dataset.descriptors.frame_rows(self.frames)]
                          if self.has_local else None)
        self.test = dataset.descriptors.select_frames(self.frames)
        self.train = dataset.descriptors.select_frames(list(dataset.split.train))

    def predictions(self, ensemble) -> np.ndarray:
        """(M, n_test_atoms) per-atom energies (eV), PyTorch."""
        from toolkit.models.networks import atomic_energies

        return atomic_energies(ensemble.networks, ensemble.theta, ensemble.normalisation,
                               self.test.values, self.test.species_index)

    def member_rows(self, ensemble, regulariser: float | None = None, lpr: bool = True,
                    train_frames: Sequence[int] | None = None) -> list[dict]:
        """Gauge scores and mean LPR per species of every member, as result-table columns
        (``lpr=False``: the LPR columns NaN, not computed). ``train_frames``: the frames the
        ensemble was trained on, whose rigidity LPR measures (default: the whole training
        split; a data-size cell trains on fewer)."""
        from toolkit.studies.rigidity import REGULARISER, model_rigidity, species_means

        spec = self.dataset.descriptors.spec
        predicted = self.predictions(ensemble)
        train = (self.train if train_frames is None
                 else self.dataset.descriptors.select_frames(list(train_frames)))
        rows = []
        for m in range(len(ensemble.seeds)):
            row = dict.fromkeys(GAUGE_COLUMNS + lpr_columns(spec), float("nan"))
            if self.projector is not None:
                report = self.projector.decompose(self.reference, predicted[m])
                row.update({"local_r2_gauge": report.r2_gauge,
                            "local_r2_frame_centred": report.r2_frame_centred,
                            "gauge_share_constants": report.share_constants,
                            "gauge_share_transfer": report.share_transfer,
                            "gauge_share_symmetric": report.share_symmetric_control,
                            "aligned_share_transfer": report.aligned_share_transfer,
                            "aligned_share_symmetric": report.aligned_share_symmetric,
                            "identifiable_share": report.identifiable_share})
            if lpr:
                values = model_rigidity(ensemble.member(m), train.values,
                                        train.species_index, train.frame_index,
                                        self.test.values, self.test.species_index,
                                        REGULARISER if regulariser is None else regulariser)
                for element, value in species_means(values, self.test.species_index,
                                                    spec.elements).items():
                    row[f"lpr_{element}"] = value
            rows.append(row)
        return rows


class TrainingRecorder:
    """A training monitor: test local R2 (aligned, gauge-projected) and psi along training.

    Pass as ``train_ensemble(..., monitor=TrainingRecorder(gauge, every=k))``; ``records``
    then holds one dict per call: iteration and, per member, the scores and psi (eV).
    """

    def __init__(self, gauge: DatasetGauge, every: int = 10):
        if not gauge.has_local:
            raise GaugeError("recording local scores along training needs frames with "
                             "local_energy")
        self.gauge, self.every = gauge, int(every)
        self.records: list[dict] = []

    def __call__(self, iteration: int, ensemble) -> None:
        predicted = self.gauge.predictions(ensemble)
        members = []
        for m in range(predicted.shape[0]):
            report = self.gauge.projector.decompose(self.gauge.reference, predicted[m])
            members.append({"local_r2_aligned": report.r2_aligned,
                            "local_r2_gauge": report.r2_gauge,
                            "gauge_share_transfer": report.share_transfer,
                            "aligned_share_transfer": report.aligned_share_transfer,
                            "psi_eV": {k: v["psi_eV"] for k, v in report.psi.items()}})
        self.records.append({"iteration": iteration, "members": members})


# -- the `aetk gauge` job -----------------------------------------------------------------------
def plot_psi(report: GaugeReport, path, title: str = "") -> list:
    """psi(r) per cross pair type (meV) with the hat-weighted pair count behind it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for pair_type, table in report.psi.items():
        r = np.array(table["r_A"])
        ax.plot(r, 1e3 * np.array(table["psi_eV"]), "o-", label=f"psi {pair_type}")
        twin = ax.twinx()
        twin.bar(r, table["pairs"], width=0.8 * (r[1] - r[0]) if len(r) > 1 else 0.1,
                 alpha=0.15, color="grey")
        twin.set_ylabel("pairs (hat-weighted)")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("cross-pair distance r (A)")
    ax.set_ylabel("psi (meV per pair, to the first element)")
    ax.set_title(title or f"gauge-projected R2 {report.r2_gauge:.3f}, aligned "
                 f"{report.r2_aligned:.3f}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = []
    for suffix in (".png", ".pdf"):
        target = path.with_suffix(suffix)
        tmp = target.with_name(f".{target.name}.tmp{suffix}")
        fig.savefig(tmp, dpi=150)
        os.replace(tmp, target)
        out.append(target)
    plt.close(fig)
    return out


def gauge_command(potential_dir, data, out=None, frames: str = "all",
                  transfer: bool | None = None, n_knots: int = N_KNOTS, spec_path=None,
                  train_data=None, regulariser: float | None = None,
                  progress: bool = True) -> dict:
    """`aetk gauge`: decompose a potential's local-energy error on labelled frames.

    Evaluates the potential through LAMMPS, decomposes the error (see module doc), and, when
    its training frames are known (``data`` is the file it was trained on, or
    ``train_data`` names one), computes the local prediction rigidity of every atom. Writes
    ``out/`` (default ``POTENTIAL/gauge-<data name>``): ``report.json``, ``psi.csv``,
    ``psi.png/.pdf`` and, with rigidity, ``atoms.csv``, all at once at the end (an error
    writes nothing). Returns the report dict.
    """
    import csv
    import io
    import json
    import shutil
    import tempfile

    from toolkit.data import atomic_write_text, file_hash, read_frames, validate_frames
    from toolkit.descriptors import compute_descriptors, read_spec
    from toolkit.evaluation import check_frames_for, predict
    from toolkit.models.potential import read_potential
    from toolkit.studies.rigidity import REGULARISER, model_rigidity, species_means

    potential = read_potential(potential_dir)
    if spec_path is not None:
        potential.check_spec(read_spec(spec_path), f"the spec in {spec_path}")
    all_frames = read_frames(data)
    indices = (potential.test_split(data) if frames == "test"
               else list(range(len(all_frames))))
    chosen = [all_frames[i] for i in indices]
    validate_frames(chosen, data, require=("energy", "local_energy"),
                    cutoff=potential.spec.cutoff, species=potential.elements)
    check_frames_for(potential, chosen, data)
    projector = GaugeProjector(chosen, potential.spec, transfer, n_knots)
    reference = np.concatenate([a.arrays["local_energy"] for a in chosen])
    prediction = predict(potential, chosen, progress=progress, source=data)
    report = projector.decompose(reference, prediction.local_energy)
    result = {"potential": str(potential_dir), "data": str(data), "frames": frames,
              "n_frames": len(chosen), **report.to_dict()}

    rigidity_atoms = None
    train_source = None
    recorded = potential.meta.get("data", {})
    if train_data is not None:
        train_source = (Path(train_data), None)
    elif recorded.get("sha256") == file_hash(data) and "split" in recorded:
        train_source = (Path(data), list(recorded["split"]["train"]))
    if train_source is not None:
        path, subset = train_source
        train_frames = read_frames(path)
        if subset is not None:
            train_frames = [train_frames[i] for i in subset]
        validate_frames(train_frames, path, require=(), cutoff=potential.spec.cutoff,
                        species=potential.elements)
        train = compute_descriptors(train_frames, potential.spec, source=path,
                                    progress=progress)
        query = compute_descriptors(chosen, potential.spec, source=data, progress=progress)
        lpr = model_rigidity(potential.model, train.values, train.species_index,
                             train.frame_index, query.values, query.species_index,
                             REGULARISER if regulariser is None else regulariser)
        result["rigidity"] = {
            "train_data": str(path), "train_frames": len(train_frames),
            "regulariser": REGULARISER if regulariser is None else regulariser,
            "mean_lpr": species_means(lpr, query.species_index, potential.elements),
            "median_lpr": {potential.elements[s]: float(np.median(lpr[query.species_index == s]))
                           for s in np.unique(query.species_index)}}
        rigidity_atoms = (query, lpr)
    else:
        result["rigidity"] = None
        result["rigidity_note"] = ("not computed: the training frames are unknown (pass "
                                   "--train-data, or the file the potential was trained on)")

    out = Path(out) if out else Path(potential_dir) / f"gauge-{Path(data).stem}"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        atomic_write_text(tmp / "report.json", json.dumps(result, indent=1) + "\n")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, ["pair", "r_A", "psi_meV", "pairs"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(psi_rows(report))
        atomic_write_text(tmp / "psi.csv", buffer.getvalue())
        if report.psi:
            plot_psi(report, tmp / "psi")
        if rigidity_atoms is not None:
            query, lpr = rigidity_atoms
            lines = ["frame,atom,species,reference_eV,predicted_eV,lpr"]
            symbols = np.array(potential.elements)[query.species_index]
            atom_in_frame = np.arange(len(lpr)) - np.searchsorted(query.frame_index,
                                                                  query.frame_index)
            for k in range(len(lpr)):
                lines.append(f"{query.frame_index[k]},{atom_in_frame[k]},{symbols[k]},"
                             f"{reference[k]!r},{prediction.local_energy[k]!r},{lpr[k]!r}")
            atomic_write_text(tmp / "atoms.csv", "\n".join(lines) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result["out"] = str(out)
    return result


# -- how a reference partition splits cross pairs ---------------------------------------------
def pair_partition_fit(frames: Sequence, local_energy: np.ndarray, spec: DescriptorSpec,
                       n_knots: int = N_KNOTS, cutoff_scale: float = 1.0) -> dict:
    """Fit a reference partition by a pairwise-additive one, to read off its cross-pair rule.

    local_i ~ c_s(i) + sum_j [ u_{s(i)s(j)}(r_ij) / 2 + sigma_ij psi(r_ij) ],

    u symmetric (half of each pair energy to each atom), psi the excess of each A-B pair's
    energy given to its A atom (sigma = +1 for the A atom, -1 for the B atom), all on hat
    bases up to ``cutoff_scale`` x the descriptor's pair cutoffs. psi = 0 is the equal split
    (LAMMPS pe/atom of a pair potential); a partition such as Bader's may differ. Returns R2
    of the fit (how pairwise the partition is), psi and u tables (eV), per-species constants.
    Local energies are only compared within this fit: the totals never enter.
    """
    frames = list(frames)
    local_energy = np.asarray(local_energy, dtype=float)
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    present = set(symbols.tolist())
    elements = [e for e in spec.elements if e in present]
    reach = cutoff_scale * spec.cutoff
    pairs = pair_list(frames, reach)
    types = list(itertools.combinations_with_replacement(elements, 2))
    columns, blocks = [], []
    for a in elements:
        columns.append((symbols == a).astype(float)[:, None])
        blocks.append(("constant", a, None))
    for a, b in types:
        cut = cutoff_scale * pair_cutoff(spec, a, b)
        mask = _type_mask(symbols, pairs, a, b) & (pairs.r < cut)
        if not mask.any():
            continue
        low = np.floor(pairs.r[mask].min() / 0.05) * 0.05
        basis = TransferBasis({(a, b): np.linspace(low, cut, n_knots + 1)[:-1]}, {(a, b): cut})
        phi = basis.hats((a, b), pairs.r[mask])
        i, j = pairs.i[mask], pairs.j[mask]
        symmetric = np.zeros((pairs.n_atoms, n_knots))
        np.add.at(symmetric, i, 0.5 * phi)
        np.add.at(symmetric, j, 0.5 * phi)
        columns.append(symmetric)
        blocks.append(("u", f"{a}-{b}", basis.knots[(a, b)]))
        if a != b:
            first_is_a = symbols[i] == a
            antisymmetric = np.zeros((pairs.n_atoms, n_knots))
            np.add.at(antisymmetric, np.where(first_is_a, i, j), phi)
            np.add.at(antisymmetric, np.where(first_is_a, j, i), -phi)
            columns.append(antisymmetric)
            blocks.append(("psi", f"{a}-{b}", basis.knots[(a, b)]))
    design = np.concatenate(columns, axis=1)
    coefficients, *_ = np.linalg.lstsq(design, local_energy, rcond=None)
    fitted = design @ coefficients
    residual = local_energy - fitted
    # standard errors from the residual scatter (atoms treated as independent: a lower bound)
    dof = max(len(local_energy) - design.shape[1], 1)
    covariance = np.linalg.pinv(design.T @ design) * float(residual @ residual) / dof
    stderr = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    species = np.array([elements.index(s) for s in symbols])
    within = local_energy - np.array([local_energy[species == k].mean()
                                      for k in range(len(elements))])[species]
    out = {"r2": 1.0 - ratio(float(residual @ residual), float(np.sum(
        (local_energy - local_energy.mean()) ** 2))),
        "r2_within_species": 1.0 - ratio(float(residual @ residual), float(within @ within)),
        "rmse_eV": float(np.sqrt(np.mean(residual**2))), "constants_eV": {}, "u_eV": {},
        "psi_eV": {}, "n_atoms": int(len(local_energy)), "cutoff_scale": cutoff_scale}
    column = 0
    for kind, name, knots in blocks:
        width = 1 if kind == "constant" else len(knots)
        values = coefficients[column:column + width]
        errors = stderr[column:column + width]
        if kind == "constant":
            out["constants_eV"][name] = float(values[0])
        else:
            out[f"{kind}_eV"][name] = {"r_A": knots.tolist(), "value": values.tolist(),
                                       "stderr": errors.tolist()}
        column += width
    return out
