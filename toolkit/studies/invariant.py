"""Invariant points (Yoo et al., Phys. Rev. Materials 3, 093802 (2019)): where the atomic
energy is known exactly under any partition.

In a structure whose atoms are all equivalent by symmetry, every partition that respects the
symmetry gives each atom E/N. Perfect single-element crystals are such structures at every
lattice constant: fcc, hcp (ideal c/a = sqrt(8/3); its two sites are related by a screw
axis, so equivalent), bcc, sc, diamond; so is the isolated atom (one atom in a periodic box
longer than twice every cutoff: E/N is the energy of the free atom, 0 for classical
potentials). A model whose atomic energies are a physical partition must reproduce E/N
there; a model that fits totals with an "ad hoc" map need not. How far a point lies from the
training descriptors says whether the error is extrapolation or a wrong map where the data
are.

Two-species ordered crystals (CsCl-type AB: every A equivalent, every B equivalent) fix only
the sum e_A + e_B = 2E/N: moving a constant from every A to every B leaves all totals of that
composition unchanged; that is the mixture's gauge, and the table reports sums there. For the
same reason a model trained on one mixture composition has single-element errors that contain
an arbitrary per-species constant; only its pair sums are gauge-free.

Pieces:
- :func:`invariant_structure` builds one structure (orthorhombic cells, replicated until
  every box length is at least twice the descriptor cutoff); overlapping atoms are refused;
- :func:`invariant_points` builds and labels a set with a LAMMPS reference (any of
  :mod:`toolkit.reference.lammps_reference`, incl. ``lj``/``lj+atm``) or DFT single points,
  checks that every per-atom reference energy equals E/N (1e-10 eV; sums for pairs) and
  computes the descriptors;
- :class:`DescriptorLocator` measures how far a point lies from training descriptors
  (nearest-neighbour and Mahalanobis distance in standardised descriptor space, each against
  the training data's own 99th percentile; components outside the training range);
- :func:`evaluate_potential` (LAMMPS) and :meth:`InvariantSet.errors` (PyTorch, fast, for
  monitoring) give the atomic-energy error at each point; :class:`InvariantMonitor` records
  them along training; :func:`invariant_columns` gives sweep columns.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.data import MIN_DISTANCE, atomic_write_text
from toolkit.descriptor_spec import Descriptors, DescriptorSpec
from toolkit.errors import AetkError

SINGLE_STRUCTURES = ("fcc", "hcp", "bcc", "sc", "diamond")
PAIR_STRUCTURES = ("cscl",)
STRUCTURES = (*SINGLE_STRUCTURES, "isolated", *PAIR_STRUCTURES)
# nearest-neighbour distance / lattice constant (hcp: a is the in-plane lattice constant)
NN_PER_A = {"sc": 1.0, "bcc": math.sqrt(3) / 2, "fcc": 1 / math.sqrt(2), "hcp": 1.0,
            "diamond": math.sqrt(3) / 4, "cscl": math.sqrt(3) / 2}
EQUIVALENCE_TOLERANCE = 1e-10  # eV: every per-atom reference energy equals E/N this closely
INSIDE_PERCENTILE = 99.0  # a point is inside when its distances are below this percentile
                          # of the training atoms' own distances


class InvariantError(AetkError, ValueError):
    """An invariant structure that cannot be built or is not invariant; one line."""


# -- structures -------------------------------------------------------------------------------
def _cell(structure: str, a: float) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(orthorhombic cell lengths, fractional positions, sublattice of each site)."""
    if structure == "sc":
        return np.full(3, a), np.zeros((1, 3)), [0]
    if structure in ("bcc", "cscl"):
        return np.full(3, a), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), [0, 1]
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    if structure == "fcc":
        return np.full(3, a), fcc, [0] * 4
    if structure == "diamond":
        return np.full(3, a), np.vstack([fcc, fcc + 0.25]), [0] * 8
    if structure == "hcp":  # orthohexagonal cell of ideal hcp, as LAMMPS's `lattice hcp`
        lengths = np.array([a, math.sqrt(3) * a, math.sqrt(8 / 3) * a])
        basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 5 / 6, 0.5], [0, 1 / 3, 0.5]])
        return lengths, basis, [0] * 4
    raise InvariantError(f"unknown structure {structure!r}; choose from {STRUCTURES}")


def lattice_constant(structure: str, nn_distance: float) -> float:
    """Lattice constant (A) whose nearest-neighbour distance is ``nn_distance`` (A)."""
    return nn_distance / NN_PER_A[structure]


def invariant_structure(structure: str, symbols: Sequence[str], cutoff: float,
                        lattice_constant: float | None = None,
                        nn_distance: float | None = None) -> Atoms:
    """One invariant structure, orthorhombic, every box length >= 2 ``cutoff`` (A).

    ``symbols``: one element, or two for ``cscl`` (A on the corners, B in the centre).
    ``isolated``: one atom in a cube of side 2 ``cutoff`` + 1 A. Give the lattice constant
    or the nearest-neighbour distance (A); atoms closer than ``toolkit.data.MIN_DISTANCE``
    are refused.
    """
    symbols = list(symbols)
    if structure in PAIR_STRUCTURES:
        if len(symbols) != 2 or symbols[0] == symbols[1]:
            raise InvariantError(f"{structure} needs two different elements, got {symbols}")
    elif len(symbols) != 1:
        raise InvariantError(f"{structure} is a single-element structure, got {symbols}")
    if structure == "isolated":
        side = 2 * cutoff + 1.0
        atoms = Atoms(symbols, positions=[[side / 2] * 3], cell=np.diag([side] * 3), pbc=True)
        # a simple-cubic lattice whose images lie beyond the cutoff: its nearest neighbour
        # (its own image) is ``side`` away; finite, so extxyz checks accept the frame
        atoms.info.update(structure="isolated", nn_distance=side, lattice_constant=side,
                          elements=symbols[0])
        return atoms
    if structure not in NN_PER_A:
        raise InvariantError(f"unknown structure {structure!r}; choose from {STRUCTURES}")
    if (lattice_constant is None) == (nn_distance is None):
        raise InvariantError("give the lattice constant or the nearest-neighbour distance")
    a = float(lattice_constant if lattice_constant is not None else
              nn_distance / NN_PER_A[structure])
    nn = a * NN_PER_A[structure]
    if not np.isfinite(a) or nn < MIN_DISTANCE:
        raise InvariantError(
            f"{structure} {''.join(symbols)} at lattice constant {a:.4f} A puts nearest "
            f"neighbours {nn:.3f} A apart, below {MIN_DISTANCE} A: the atoms overlap; use a "
            f"lattice constant of at least {MIN_DISTANCE / NN_PER_A[structure]:.4f} A")
    lengths, basis, sublattice = _cell(structure, a)
    repeats = [max(1, math.ceil((2 * cutoff + 1e-6) / length)) for length in lengths]
    grid = np.array([[i, j, k] for i in range(repeats[0]) for j in range(repeats[1])
                     for k in range(repeats[2])])
    fractional = (grid[:, None, :] + basis[None, :, :]).reshape(-1, 3) / repeats
    names = [symbols[sublattice[s] % len(symbols)] for _ in grid for s in range(len(basis))]
    box = lengths * repeats
    atoms = Atoms(names, scaled_positions=fractional, cell=np.diag(box), pbc=True)
    atoms.info.update(structure=structure, nn_distance=float(nn), lattice_constant=a,
                      elements="".join(symbols))
    return atoms


def nearest_neighbour_distances(frames: Sequence[Atoms], reach: float = 6.0) -> np.ndarray:
    """Each atom's nearest-neighbour distance (A, minimum image) over all ``frames``."""
    from ase.neighborlist import neighbor_list

    out = []
    for atoms in frames:
        i, d = neighbor_list("id", atoms, reach)
        nearest = np.full(len(atoms), np.inf)
        np.minimum.at(nearest, i, d)
        out.append(nearest)
    distances = np.concatenate(out)
    return distances[np.isfinite(distances)]


def nn_grid(frames: Sequence[Atoms], points: int = 5, low: float = 1.0,
            high: float = 99.0) -> np.ndarray:
    """``points`` nearest-neighbour distances (A) spanning the ``low``-``high`` percentiles
    of the training frames' per-atom nearest-neighbour distances."""
    distances = nearest_neighbour_distances(frames)
    if not len(distances):
        raise InvariantError("no neighbours in the training frames; give --nn-range")
    lo, hi = np.percentile(distances, [low, high])
    return np.linspace(lo, hi, points) if points > 1 else np.array([0.5 * (lo + hi)])


# -- the set of points ------------------------------------------------------------------------
@dataclass
class InvariantSet:
    """Labelled invariant structures with one representative descriptor row per species.

    ``reference[p]``: the exact atomic energy E/N (eV) of a single-element point, or the sum
    e_A + e_B = 2E/N of a pair point. ``rows``: one dict per point (structure, elements,
    nn_distance, lattice_constant, natoms, kind, reference, and distances once located).
    """

    frames: list[Atoms]
    rows: list[dict]
    values: np.ndarray  # (R, D): one descriptor row per (point, species)
    species_index: np.ndarray  # (R,)
    point_of_row: np.ndarray  # (R,)
    reference: np.ndarray  # (P,) eV
    spec: DescriptorSpec

    @property
    def kinds(self) -> np.ndarray:
        return np.array([row["kind"] for row in self.rows])

    def predicted(self, model) -> np.ndarray:
        """Atomic energy (single) or e_A + e_B (pair) of a SpeciesNetworks, PyTorch, eV."""
        per_row = model.atomic_energies(self.values, self.species_index)
        return np.bincount(self.point_of_row, weights=per_row, minlength=len(self.rows))

    def errors(self, model) -> np.ndarray:
        """Predicted minus exact atomic energy (sum for pairs) at every point, eV."""
        return self.predicted(model) - self.reference

    def locate(self, locator: DescriptorLocator) -> None:
        """Add the distances to the training descriptors to ``rows``."""
        found = locator.distances(self.values, self.species_index)
        for p, row in enumerate(self.rows):
            mine = [k for k in range(len(self.point_of_row)) if self.point_of_row[k] == p]
            row["nn_ratio"] = float(max(found["nn_ratio"][k] for k in mine))
            row["mahalanobis_ratio"] = float(max(found["mahalanobis_ratio"][k] for k in mine))
            row["components_outside"] = int(max(found["components_outside"][k] for k in mine))
            row["inside"] = bool(row["nn_ratio"] <= 1.0)


def invariant_points(
    elements: Sequence[str],
    spec: DescriptorSpec,
    reference,
    nn_distances: dict[str, np.ndarray],
    structures: Sequence[str] = STRUCTURES,
    dft: dict | None = None,
    progress: bool = False,
) -> InvariantSet:
    """Build, label and describe invariant points of ``elements``.

    ``reference``: a :class:`~toolkit.reference.lammps_reference.LammpsReference`, or None
    with ``dft`` = {"workdir": ..., "settings": DftSettings, "launcher": Launcher} for one
    CP2K single point per structure. ``nn_distances``: per element, the nearest-neighbour
    distances (A) of its crystals (pairs use the mean of their two elements' grids).
    """
    from toolkit.descriptors import compute_descriptors

    bad = sorted(set(structures) - set(STRUCTURES))
    if bad:
        raise InvariantError(f"unknown structures {bad}; choose from {list(STRUCTURES)}")
    frames: list[Atoms] = []
    for symbol in elements:
        for structure in structures:
            if structure == "isolated":
                frames.append(invariant_structure("isolated", [symbol], spec.cutoff))
            elif structure in SINGLE_STRUCTURES:
                frames += [invariant_structure(structure, [symbol], spec.cutoff, nn_distance=d)
                           for d in nn_distances[symbol]]
    pair_structures = [s for s in structures if s in PAIR_STRUCTURES]
    for i, a in enumerate(elements):
        for b in elements[i + 1:]:
            grid = 0.5 * (np.asarray(nn_distances[a]) + np.asarray(nn_distances[b]))
            frames += [invariant_structure(s, [a, b], spec.cutoff, nn_distance=d)
                       for s in pair_structures for d in grid]
    if dft is not None:
        labelled = dft_label(frames, **dft)
    else:
        from toolkit.reference.lammps_reference import label_frames

        labelled = label_frames(frames, reference, progress=progress)
    descriptors = compute_descriptors(labelled, spec, progress=progress, cache=False)
    return assemble_points(labelled, descriptors, spec, dft is not None)


def assemble_points(frames: list[Atoms], descriptors: Descriptors, spec: DescriptorSpec,
                    from_dft: bool = False) -> InvariantSet:
    """The :class:`InvariantSet` of labelled structures; refuses any whose per-atom reference
    energies (of one species) differ by more than 1e-10 eV, or single-element ones whose
    atoms do not carry E/N, or whose equivalent atoms have different descriptors."""
    rows, values, species, owner, reference = [], [], [], [], []
    for p, atoms in enumerate(frames):
        symbols = np.array(atoms.get_chemical_symbols())
        local = atoms.arrays["local_energy"]
        energy = float(atoms.info["energy"])
        kind = "pair" if atoms.info["structure"] in PAIR_STRUCTURES else "single"
        what = f"{atoms.info['structure']} {atoms.info['elements']} (nn " \
               f"{atoms.info['nn_distance']:.4f} A)"
        exact = energy / len(atoms) * (2 if kind == "pair" else 1)
        block = descriptors.of_frame(p)
        for s in dict.fromkeys(symbols):  # each species once, in order of appearance
            mask = symbols == s
            spread = float(np.ptp(local[mask]))
            if spread > EQUIVALENCE_TOLERANCE and not from_dft:
                raise InvariantError(f"{what}: per-atom reference energies of {s} differ by "
                                     f"{spread:.3g} eV; its atoms are not equivalent")
            d_spread = float(np.abs(block[mask] - block[mask][0]).max())
            if d_spread > 1e-8 * max(1.0, float(np.abs(block).max())):
                raise InvariantError(f"{what}: descriptors of equivalent {s} atoms differ by "
                                     f"{d_spread:.3g}")
            values.append(block[mask][0])
            species.append(spec.type_of(s) - 1)
            owner.append(p)
        if kind == "single" and abs(float(local[0]) - exact) > EQUIVALENCE_TOLERANCE \
                and not from_dft:
            raise InvariantError(f"{what}: per-atom energy {local[0]!r} differs from E/N "
                                 f"{exact!r}")
        rows.append({"structure": atoms.info["structure"], "elements": atoms.info["elements"],
                     "kind": kind, "nn_distance": float(atoms.info["nn_distance"]),
                     "lattice_constant": float(atoms.info["lattice_constant"]),
                     "natoms": len(atoms), "reference": exact})
        reference.append(exact)
    return InvariantSet(frames, rows, np.array(values), np.array(species, dtype=np.int64),
                        np.array(owner, dtype=np.int64), np.array(reference), spec)


def dft_label(frames: list[Atoms], workdir: str | Path, settings=None, launcher=None
              ) -> list[Atoms]:
    """One CP2K single point per structure (resumable: a finished point is read back).

    Every atom of a single-element point gets E/N, which any symmetric partition assigns;
    pair points only carry their total (per-atom values are set to E/N for the bookkeeping,
    only their sum is used).
    """
    from toolkit.reference.dft.cp2k import DftSettings, Launcher, run_single_point

    settings = settings or DftSettings()
    launcher = launcher or Launcher()
    workdir = Path(workdir)
    labelled = []
    for k, atoms in enumerate(frames):
        name = f"{k:03d}-{atoms.info['structure']}-{atoms.info['elements']}"
        record = workdir / name / "result.json"
        if record.is_file():
            energy = json.loads(record.read_text())["energy"]
        else:
            energy = run_single_point(atoms, workdir / name, settings, launcher)["energy"]
            atomic_write_text(record, json.dumps({"energy": energy}) + "\n")
        copy = atoms.copy()
        copy.info["energy"] = float(energy)
        copy.info["reference"] = "dft"
        copy.arrays["local_energy"] = np.full(len(atoms), energy / len(atoms))
        labelled.append(copy)
    return labelled


# -- where the points lie relative to the training data --------------------------------------
@dataclass
class DescriptorLocator:
    """Distances of descriptors to the training atoms of their species, in descriptor space
    standardised with the training mean and std (per species).

    ``nn_ratio``: Euclidean distance to the nearest training atom over the 99th percentile of
    the training atoms' own nearest-other-atom distances (a subsample of at most 2,000
    atoms); ``mahalanobis_ratio``: Mahalanobis distance (pseudo-inverse covariance) over the
    99th percentile of the training atoms' own; ``components_outside``: descriptor
    components outside the training [min, max]. A ratio <= 1 is inside the data.
    """

    spec: DescriptorSpec
    per_species: dict[int, dict] = field(default_factory=dict)

    @classmethod
    def from_descriptors(cls, descriptors: Descriptors, seed: int = 0,
                         sample: int = 2000) -> DescriptorLocator:
        from scipy.spatial import cKDTree

        locator = cls(descriptors.spec)
        rng = np.random.default_rng(seed)
        for s in np.unique(descriptors.species_index):
            block = descriptors.values[descriptors.species_index == s]
            if len(block) < 2:  # no spread to measure against: such points stay at inf
                continue
            mean, std = block.mean(axis=0), block.std(axis=0)
            std = np.where(std > 1e-12, std, 1.0)
            z = (block - mean) / std
            tree = cKDTree(z)
            chosen = rng.choice(len(z), min(sample, len(z)), replace=False)
            own, _ = tree.query(z[chosen], k=2)
            nn_scale = float(np.percentile(own[:, 1], INSIDE_PERCENTILE))
            covariance = np.atleast_2d(np.cov(z.T))
            eigenvalues, eigenvectors = np.linalg.eigh(covariance)
            keep = eigenvalues > 1e-10 * eigenvalues.max()
            locator.per_species[int(s)] = {
                "mean": mean, "std": std, "tree": tree, "nn_scale": max(nn_scale, 1e-12),
                "vectors": eigenvectors[:, keep], "values": eigenvalues[keep],
                "min": z.min(axis=0), "max": z.max(axis=0),
            }
            own_m = locator._mahalanobis(int(s), z)
            locator.per_species[int(s)]["m_scale"] = float(
                np.percentile(own_m, INSIDE_PERCENTILE))
        return locator

    def _mahalanobis(self, s: int, z: np.ndarray) -> np.ndarray:
        data = self.per_species[s]
        projected = z @ data["vectors"]
        return np.sqrt(np.sum(projected**2 / data["values"], axis=1))

    def distances(self, values: np.ndarray, species_index: np.ndarray) -> dict[str, np.ndarray]:
        n = len(values)
        out = {"nn_ratio": np.full(n, np.inf), "mahalanobis_ratio": np.full(n, np.inf),
               "components_outside": np.full(n, values.shape[1] if n else 0)}
        for s, data in self.per_species.items():
            mask = species_index == s
            if not mask.any():
                continue
            z = (values[mask] - data["mean"]) / data["std"]
            nearest, _ = data["tree"].query(z, k=1)
            out["nn_ratio"][mask] = nearest / data["nn_scale"]
            out["mahalanobis_ratio"][mask] = self._mahalanobis(s, z) / data["m_scale"]
            span = data["max"] - data["min"]
            slack = 1e-9 * np.maximum(span, 1.0)
            outside = (z < data["min"] - slack) | (z > data["max"] + slack)
            out["components_outside"][mask] = outside.sum(axis=1)
        return out


# -- scores -----------------------------------------------------------------------------------
INVARIANT_COLUMNS = ["invariant_rmse", "invariant_inside_rmse", "invariant_near_rmse",
                     "invariant_isolated_error", "invariant_pair_rmse"]
NEAR_RATIO = 3.0  # "near" the data: nn ratio at most this


def summary_scores(rows: Sequence[dict], errors: np.ndarray) -> dict[str, float]:
    """RMSE over single-element points (all, incl. the isolated atom; inside the data, nn
    ratio <= 1; near it, nn ratio <= :data:`NEAR_RATIO`, isolated atom excluded), the isolated
    atom's error (mean over elements) and the RMSE of pair sums; eV, NaN where there is no
    such point."""
    errors = np.asarray(errors, dtype=float)
    kind = np.array([r["kind"] for r in rows])
    structure = np.array([r["structure"] for r in rows])
    inside = np.array([bool(r.get("inside", False)) for r in rows])
    near = np.array([r.get("nn_ratio", math.inf) <= NEAR_RATIO for r in rows])

    def rmse(mask):
        return float(np.sqrt(np.mean(errors[mask] ** 2))) if mask.any() else float("nan")

    single = (kind == "single") & (structure != "isolated")
    isolated = structure == "isolated"
    return {"invariant_rmse": rmse(single | isolated),
            "invariant_inside_rmse": rmse(single & inside),
            "invariant_near_rmse": rmse(single & near),
            "invariant_isolated_error": float(np.mean(errors[isolated])) if isolated.any()
            else float("nan"),
            "invariant_pair_rmse": rmse(kind == "pair")}


def invariant_columns(ensemble, points: InvariantSet) -> list[dict[str, float]]:
    """Sweep columns (:data:`INVARIANT_COLUMNS`) of every member of a TrainedEnsemble."""
    return [summary_scores(points.rows, points.errors(ensemble.member(m)))
            for m in range(len(ensemble.seeds))]


class InvariantMonitor:
    """Training monitor (``train_ensemble(..., monitor=...)``): invariant-point errors of
    every member every ``every`` iterations, and optionally local-energy R2 on test atoms.

    ``records``: one dict per (iteration, member) with :data:`INVARIANT_COLUMNS`, the error
    at every point (``errors``, eV) and, with ``test``, ``local_r2`` (and per-frame total
    RMSE per atom, eV) on ``test`` = (Descriptors, reference local energies, totals).
    """

    def __init__(self, points: InvariantSet, every: int = 10, test=None):
        self.points = points
        self.every = every
        self.test = test
        self.records: list[dict] = []

    def __call__(self, iteration: int, ensemble) -> None:
        from toolkit.metrics import r2

        for m in range(len(ensemble.seeds)):
            model = ensemble.member(m)
            errors = self.points.errors(model)
            record = {"iteration": iteration, "member": m, "seed": ensemble.seeds[m],
                      **summary_scores(self.points.rows, errors), "errors": errors.tolist()}
            if self.test is not None:
                descriptors, local, totals = self.test
                predicted = model.atomic_energies(descriptors.values, descriptors.species_index)
                record["local_r2"] = r2(local, predicted)
                sums = np.bincount(descriptors.frame_index, weights=predicted)
                n = np.bincount(descriptors.frame_index)
                record["total_rmse_per_atom"] = float(np.sqrt(np.mean(((sums - totals) / n) ** 2)))
            self.records.append(record)


# -- a potential at the points ----------------------------------------------------------------
def evaluate_potential(potential, points: InvariantSet, progress: bool = False) -> np.ndarray:
    """Predicted atomic energy (sum for pairs) at every point, through LAMMPS (eV)."""
    from toolkit.evaluation import predict

    prediction = predict(potential, points.frames, progress=progress)
    out = np.zeros(len(points.rows))
    for p, atoms in enumerate(points.frames):
        local = prediction.local_energy[prediction.frame_index == p]
        symbols = np.array(atoms.get_chemical_symbols())
        out[p] = sum(float(local[symbols == s].mean()) for s in dict.fromkeys(symbols))
    return out


def table_rows(points: InvariantSet, predicted: np.ndarray | None) -> list[dict]:
    rows = []
    for p, row in enumerate(points.rows):
        out = dict(row)
        if predicted is not None:
            out["predicted"] = float(predicted[p])
            out["error"] = float(predicted[p] - points.reference[p])
        out["note"] = ("only e_A + e_B is fixed (the mixture's gauge)" if row["kind"] == "pair"
                       else "")
        rows.append(out)
    return rows


TABLE_COLUMNS = ["structure", "elements", "kind", "nn_distance", "lattice_constant", "natoms",
                 "reference", "predicted", "error", "nn_ratio", "mahalanobis_ratio",
                 "components_outside", "inside", "note"]


def write_table(path: str | Path, rows: Sequence[dict]) -> None:
    buffer = io.StringIO()
    columns = [c for c in TABLE_COLUMNS if any(c in r for r in rows)]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def format_table(rows: Sequence[dict]) -> str:
    """Markdown: one line per point, errors in meV."""
    lines = ["| structure | elements | nn distance (A) | E/N reference (eV) | error (meV) | "
             "nn ratio | inside |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        error = f"{1e3 * r['error']:+.1f}" if "error" in r else ""
        ratio = f"{r['nn_ratio']:.2f}" if "nn_ratio" in r else ""
        inside = ("yes" if r.get("inside") else "no") if "inside" in r else ""
        label = r["elements"] + (" (sum)" if r["kind"] == "pair" else "")
        lines.append(f"| {r['structure']} | {label} | {r['nn_distance']:.3f} | "
                     f"{r['reference']:.5f} | {error} | {ratio} | {inside} |")
    return "\n".join(lines)


def invariant_figure(rows: Sequence[dict], out: str | Path, title: str = "") -> list[Path]:
    """Error vs nearest-neighbour distance per structure (filled: inside the data), and
    |error| vs descriptor distance ratio. PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    markers = {"fcc": "o", "hcp": "s", "bcc": "^", "sc": "D", "diamond": "v", "cscl": "P"}
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if "error" in r:
            groups.setdefault((r["structure"], r["elements"]), []).append(r)
    for k, ((structure, elements), members) in enumerate(sorted(groups.items())):
        colour = f"C{k % 10}"
        if structure == "isolated":
            for r in members:
                left.axhline(1e3 * r["error"], color=colour, ls="--", lw=1,
                             label=f"isolated {elements}: {1e3 * r['error']:+.0f} meV")
        else:
            d = [r["nn_distance"] for r in members]
            e = [1e3 * r["error"] for r in members]
            left.plot(d, e, "-", color=colour, lw=0.8)
            for r in members:
                left.plot(r["nn_distance"], 1e3 * r["error"], markers.get(structure, "o"),
                          color=colour, mfc=colour if r.get("inside") else "white")
            left.plot([], [], markers.get(structure, "o"), color=colour,
                      label=f"{structure} {elements}" + (" (sum)" if structure == "cscl" else ""))
        for r in members:
            if "nn_ratio" in r and np.isfinite(r["nn_ratio"]):
                right.plot(r["nn_ratio"], abs(1e3 * r["error"]), markers.get(structure, "*"),
                           color=colour)
    left.axhline(0, color="k", lw=0.5)
    left.set_xlabel("nearest-neighbour distance (A)")
    left.set_ylabel("atomic energy error at invariant point (meV)")
    left.legend(fontsize=7)
    right.axvline(1.0, color="k", ls=":", lw=1)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("descriptor distance / training 99th percentile (nn ratio)")
    right.set_ylabel("|error| (meV)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "invariant.png", out / "invariant.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


# -- the `aetk invariant` job -----------------------------------------------------------------
def data_reference(frames: Sequence[Atoms], source: str) -> str:
    """The reference recorded in the frames (``lj``, ``lj+atm``, ``lammps:...``)."""
    from toolkit.reference.classical import REFERENCES
    from toolkit.reference.lammps_reference import is_lammps_reference

    found = {str(a.info.get("reference", "")) for a in frames}
    if len(found) == 1:
        name = found.pop()
        if name in REFERENCES or is_lammps_reference(name):
            return name
    raise InvariantError(f"{source}: the frames do not record one classical or lammps: "
                         f"reference ({sorted(found)}); give --reference (lj, lj+atm, "
                         "lammps:FILE) or --dft")


def run_invariant(
    out: str | Path,
    potential: str | Path | None = None,
    data: str | Path | None = None,
    reference: str | None = None,
    spec: DescriptorSpec | None = None,
    structures: Sequence[str] = STRUCTURES,
    points: int = 5,
    nn_range: tuple[float, float] | None = None,
    write_frames: str | Path | None = None,
    dft: dict | None = None,
    progress: bool = True,
    anchor_max_ratio: float = math.inf,
) -> dict:
    """Invariant points of a potential's elements: exact E/N from the reference, the
    potential's error at each (LAMMPS), distances to the training descriptors; table
    (``invariant.csv``), summary (``invariant.json``) and figure (``invariant.png``) in
    ``out``. Without a potential: the reference points and distances only (e.g. to write
    them as training anchors with ``write_frames``).

    ``data``: the training frames (their training split when they are the potential's own
    training file, else all frames): the nearest-neighbour grid spans their 1st-99th
    percentile unless ``nn_range`` (A) is given, and distances are measured to their
    descriptors. ``reference``: default, the one the data record. ``write_frames``: the
    labelled structures as extxyz (training anchors, `aetk fit --anchors`), only those with
    an nn ratio of at most ``anchor_max_ratio`` (all by default).
    """
    from toolkit.data import read_frames
    from toolkit.data import write_frames as write_extxyz
    from toolkit.descriptors import compute_descriptors
    from toolkit.models.potential import read_potential
    from toolkit.reference.lammps_reference import any_reference

    out = Path(out)
    loaded = read_potential(potential) if potential is not None else None
    if loaded is not None:
        if spec is not None and spec != loaded.spec:
            loaded.check_spec(spec, "--spec")
        spec = loaded.spec
    spec = spec or DescriptorSpec()
    frames = training = None
    if data is not None:
        frames = read_frames(data)
        training = frames
        if loaded is not None and "split" in loaded.meta.get("data", {}):
            from toolkit.data import file_hash

            if loaded.meta["data"].get("sha256") == file_hash(data):
                training = [frames[i] for i in loaded.meta["data"]["split"]["train"]]
    if training:
        found = {s for a in training for s in a.get_chemical_symbols()}
        if found - set(spec.elements):
            raise InvariantError(f"{data}: elements {sorted(found - set(spec.elements))} are "
                                 f"not in the descriptor spec {list(spec.elements)}")
        elements = [e for e in spec.elements if e in found]
    else:
        elements = list(loaded.trained_elements if loaded else spec.elements)
    if loaded is not None:
        loaded.check_species(set(elements), "the invariant points")
    if nn_range is not None:
        lo, hi = nn_range
        if not 0 < lo <= hi:
            raise InvariantError(f"--nn-range {lo} {hi}: need 0 < low <= high (A)")
        grids = {e: np.linspace(lo, hi, points) if points > 1 else np.array([lo])
                 for e in elements}
    elif training is not None:
        # mixtures: each element's crystals span its own same-element neighbour distances
        grids = {e: nn_grid(training, points) if len(elements) == 1 else
                 _element_grid(training, e, points) for e in elements}
    else:
        raise InvariantError("give --data (training frames) or --nn-range LOW HIGH (A)")
    if dft is None:
        reference = reference or (data_reference(frames, str(data)) if frames else None)
        if reference is None:
            raise InvariantError("give --reference (lj, lj+atm, lammps:FILE) or --dft")
        ref = any_reference(reference, tuple(spec.elements))
    else:
        ref, reference = None, "dft"
    pair_ok = [s for s in structures if s not in PAIR_STRUCTURES or len(elements) > 1]
    points_set = invariant_points(elements, spec, ref, grids, pair_ok, dft=dft,
                                  progress=progress)
    if training is not None:
        descriptors = compute_descriptors(training, spec, source=data, progress=progress)
        points_set.locate(DescriptorLocator.from_descriptors(descriptors))
    predicted = evaluate_potential(loaded, points_set, progress=progress) if loaded else None
    rows = table_rows(points_set, predicted)
    out.mkdir(parents=True, exist_ok=True)
    write_table(out / "invariant.csv", rows)
    summary = {"potential": str(loaded.directory) if loaded else None,
               "data": str(data) if data else None, "reference": reference,
               "elements": elements, "structures": list(pair_ok),
               "nn_grid": {e: g.tolist() for e, g in grids.items()}}
    if predicted is not None:
        summary["scores"] = summary_scores(rows, np.array([r["error"] for r in rows]))
        summary["figure"] = [str(p) for p in invariant_figure(
            rows, out, title=f"{Path(str(potential)).name} vs {reference}")]
        if len(elements) > 1:
            summary["note"] = ("mixture: single-element errors contain the arbitrary "
                               "per-species constant of a model trained at fixed "
                               "composition; pair sums (cscl) are gauge-free")
    atomic_write_text(out / "invariant.json", json.dumps(summary, indent=1) + "\n")
    if write_frames is not None:
        chosen = [atoms for atoms, row in zip(points_set.frames, rows, strict=True)
                  if row.get("nn_ratio", 0.0) <= anchor_max_ratio]
        write_extxyz(write_frames, chosen)
        summary["anchors_written"] = len(chosen)
    summary["rows"] = rows
    return summary


def _element_grid(frames: Sequence[Atoms], symbol: str, points: int) -> np.ndarray:
    """Grid of one element's nearest same-element neighbour distances in mixed frames."""
    from ase.neighborlist import neighbor_list

    distances = []
    for atoms in frames:
        symbols = np.array(atoms.get_chemical_symbols())
        i, j, d = neighbor_list("ijd", atoms, 6.0)
        keep = (symbols[i] == symbol) & (symbols[j] == symbol)
        nearest = np.full(len(atoms), np.inf)
        np.minimum.at(nearest, i[keep], d[keep])
        distances.append(nearest[(symbols == symbol) & np.isfinite(nearest)])
    distances = np.concatenate(distances)
    lo, hi = np.percentile(distances, [1.0, 99.0])
    return np.linspace(lo, hi, points) if points > 1 else np.array([0.5 * (lo + hi)])


# -- sweep columns ----------------------------------------------------------------------------
@dataclass(frozen=True)
class InvariantConfig:
    """The optional ``[invariant]`` table of a sweep config: invariant-point columns per
    member (:data:`INVARIANT_COLUMNS`), from the points of each system's training frames."""

    reference: str | None = None  # default: the sweep's data reference / what the data record
    structures: tuple[str, ...] = STRUCTURES
    points: int = 5

    @classmethod
    def from_table(cls, table: dict, where: str) -> InvariantConfig:
        unknown = set(table) - {"reference", "structures", "points"}
        if unknown:
            raise InvariantError(f"{where}: unknown keys {sorted(unknown)}; known: reference, "
                                 "structures, points")
        structures = tuple(table.get("structures", STRUCTURES))
        bad = sorted(set(structures) - set(STRUCTURES))
        if bad or int(table.get("points", 5)) < 1:
            raise InvariantError(f"{where}: structures must be among {list(STRUCTURES)} and "
                                 "points >= 1")
        return cls(table.get("reference"), structures, int(table.get("points", 5)))

    def to_dict(self) -> dict:
        return {"reference": self.reference, "structures": list(self.structures),
                "points": self.points}

    def points_for(self, dataset, spec: DescriptorSpec, data_reference_name: str | None
                   ) -> InvariantSet:
        """Labelled, located invariant points for one system's :class:`Dataset`."""
        from toolkit.reference.lammps_reference import any_reference

        train = [dataset.frames[i] for i in dataset.split.train]
        elements = [e for e in spec.elements
                    if any(e in a.get_chemical_symbols() for a in train)]
        grids = {e: nn_grid(train, self.points) if len(elements) == 1 else
                 _element_grid(train, e, self.points) for e in elements}
        name = self.reference or data_reference_name or data_reference(train, "sweep data")
        structures = [s for s in self.structures if s not in PAIR_STRUCTURES
                      or len(elements) > 1]
        points = invariant_points(elements, spec, any_reference(name, tuple(spec.elements)),
                                  grids, structures)
        points.locate(DescriptorLocator.from_descriptors(
            dataset.descriptors.select_frames(list(dataset.split.train))))
        return points


def rank_correlation(rows: Sequence[dict], x: str = "invariant_rmse",
                     y: str = "local_r2_aligned") -> dict[str, dict]:
    """Spearman rank correlation of ``x`` and ``y`` across sweep members, per system and
    over all rows (NaN rows dropped): does the invariant-point error predict local R2?"""
    from scipy.stats import spearmanr

    out = {}
    groups: dict[str, list[dict]] = {"all": list(rows)}
    for row in rows:
        groups.setdefault(str(row["system"]), []).append(row)
    for name, members in groups.items():
        a = np.array([float(r[x]) for r in members])
        b = np.array([float(r[y]) for r in members])
        keep = np.isfinite(a) & np.isfinite(b)
        if keep.sum() < 3:
            continue
        result = spearmanr(a[keep], b[keep])
        out[name] = {"spearman": float(result.statistic), "p_value": float(result.pvalue),
                     "n": int(keep.sum())}
    return out
