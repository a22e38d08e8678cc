"""What energies on reference points off the atoms mean (CEMT): bonds on LJ, grids on DFT.

Three studies, each behind ``aetk points ...`` and documented in docs/reference_points.md:

- :func:`bond_spec_search`: for bond points of the classical LJ mixture, how well a linear
  function of the bond-centre descriptor can represent the exact pair energy (direct fit,
  the representation's limit), and what a linear bond model fitted on totals recovers, for
  a few bond cutoffs and point radii.
- :func:`run_lj_study`: atom-centred, bond-centred and combined (atoms + bonds) networks of
  every width trained on the same totals with the same trainer; bond energies against the
  exact pair energies, atomic energies (own term + half of each bond) against the reference
  local energies (``compute pe/atom``), raw and aligned. One results table, resumable by cell.
- :func:`run_dft_grid_study`: grid-centred networks trained on the shipped DFT totals; their
  grid energies against the coarse-grained electrostatic energy density of a few recomputed
  frames (toolkit/points/energy_density.py), mapped by the shipped partition fit.

Plus :func:`point_costs`: descriptor and model cost per frame, points against atoms.
"""

from __future__ import annotations

import csv
import io
import json
import time
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from toolkit.data import atomic_write_text, read_frames, split_frames
from toolkit.descriptor_spec import Descriptors, DescriptorSpec
from toolkit.errors import AetkError
from toolkit.metrics import align_per_species, r2, r2_within_species, rmse
from toolkit.models.networks import Architecture
from toolkit.models.training import TrainedEnsemble, TrainingSettings, train_ensemble
from toolkit.points.descriptors import (
    PointDescriptors,
    compute_point_descriptors,
    frame_rows,
)
from toolkit.points.models import atomic_energies_from_bonds, frame_totals, row_energies
from toolkit.points.pair_energy import bond_pair_energies
from toolkit.points.placement import bond_types

MODELS = ("atoms", "bonds", "atoms+bonds")
RESULT_COLUMNS = [
    "model", "activation", "width", "seed", "n_params", "total_r2", "total_per_atom_rmse",
    "local_r2", "local_r2_aligned", "local_rmse_aligned", "local_r2_gauge",
    "bond_r2", "bond_r2_aligned", "bond_rmse", "best_iteration", "cell_seconds", "n_train",
    "n_test",
]


class PointsConfigError(AetkError, ValueError):
    pass


# -- the gauge-projected score (toolkit/studies/identifiability.py) ------------------------------
def gauge_projector(frames: list, spec: DescriptorSpec):
    """The :class:`~toolkit.studies.identifiability.GaugeProjector` of the test frames' atoms
    (atoms only: points carry no gauge of their own), built once per scoring call."""
    from toolkit.studies.identifiability import GaugeProjector

    return GaugeProjector(frames, spec.atoms_only)


def gauge_projected_local_r2(projector, reference: np.ndarray, predicted: np.ndarray) -> float:
    """Local R2 after projecting out what totals cannot fix (species constants, cross-pair
    transfers)."""
    return float(projector.decompose(reference, predicted).r2_gauge)


# -- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LjStudyConfig:
    """One LJ study: data, models, widths, seeds, bond points, training (a TOML file)."""

    name: str = "points_lj"
    models: tuple[str, ...] = ("atoms", "bonds")
    activations: tuple[str, ...] = ("tanh",)
    widths: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    linear: bool = True  # also every model without hidden layer (E linear in descriptors)
    seeds: tuple[int, ...] = (0, 1, 2)
    split_seed: int = 0
    bond_cutoff_factor: float = 1.6  # bonds below f (R_a + R_b) = f sigma_ab: 1.6 = reference
    bond_reach: float = 1.05
    system: str = "ArKr"
    reference: str = "lj"
    frames: int = 300
    data_seed: int = 1
    spec: DescriptorSpec = field(default_factory=DescriptorSpec)
    training: TrainingSettings = TrainingSettings(max_iterations=500, patience=50)

    def point_spec(self) -> DescriptorSpec:
        return replace(self.spec, points=bond_types(self.spec, self.bond_reach,
                                                    self.bond_cutoff_factor))

    def cells(self) -> list[tuple[str, str, int]]:
        out = [(m, "linear", 0) for m in self.models] if self.linear else []
        return out + [(m, a, w) for m in self.models for a in self.activations
                      for w in self.widths]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        data["training"] = self.training.to_dict()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def read_lj_config(path: str | Path) -> LjStudyConfig:
    """``[points]`` (every :class:`LjStudyConfig` field but spec and training), optional
    ``[descriptor]`` and ``[training]`` tables; unknown keys are refused by name."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PointsConfigError(f"{path}: unreadable study config ({exc})") from None
    unknown = set(raw) - {"points", "descriptor", "training"}
    known = set(LjStudyConfig.__dataclass_fields__) - {"spec", "training"}
    unknown |= {f"points.{k}" for k in set(raw.get("points", {})) - known}
    unknown |= {f"training.{k}" for k in set(raw.get("training", {}))
                - set(TrainingSettings.__dataclass_fields__)}
    if unknown:
        raise PointsConfigError(f"{path}: unknown keys {sorted(unknown)}")
    points = dict(raw.get("points", {}))
    bad = set(points.get("models", ())) - set(MODELS)
    if bad:
        raise PointsConfigError(f"{path}: models {sorted(bad)} unknown; choose from {MODELS}")
    for key in ("models", "activations", "widths", "seeds"):
        if key in points:
            points[key] = tuple(points[key])
    spec = (DescriptorSpec.from_dict(raw["descriptor"], f"{path} [descriptor]")
            if "descriptor" in raw else DescriptorSpec())
    return LjStudyConfig(**points, spec=spec,
                         training=TrainingSettings(**raw.get("training", {})))


# -- data ---------------------------------------------------------------------------------------
@dataclass
class LjData:
    """Frames with atom and bond rows, the exact pair energy of every bond, and a split."""

    frames: list
    points: PointDescriptors  # atoms then bonds per frame
    pair_energy: np.ndarray  # (rows,) eV for bond rows, NaN for atom rows
    energies: np.ndarray  # (F,) eV
    local_energy: np.ndarray  # (atoms,) eV, frames concatenated
    atoms_per_frame: np.ndarray
    split: object

    def model_rows(self, model: str) -> PointDescriptors:
        rows = self.points.rows(atoms="atoms" in model, points="bonds" in model)
        if model == "atoms":  # plain atom-centred: a spec without point types
            d = rows.descriptors
            rows = replace(rows, descriptors=Descriptors(d.values, d.frame_index,
                                                         d.species_index, d.spec.atoms_only))
        return rows


def lj_data_path(config: LjStudyConfig, out: Path) -> Path:
    """Same name and content as the atom-centred sweep's data (toolkit/studies/sweep.py)."""
    return out / "data" / f"{config.system}-{config.reference}-{config.frames}" \
        f"-s{config.data_seed}.extxyz"


def load_lj_data(config: LjStudyConfig, out: Path, progress: bool = True) -> LjData:
    from toolkit.data import write_frames
    from toolkit.reference.classical import ClassicalRun, generate_frames

    path = lj_data_path(config, out)
    if not path.is_file():
        run = ClassicalRun(config.system, config.reference, n_frames=config.frames,
                           seed=config.data_seed)
        write_frames(path, generate_frames(run, progress=progress))
    frames = read_frames(path)
    points = compute_point_descriptors(frames, config.point_spec(), with_atoms=True,
                                       source=path, progress=progress)
    pair = np.full(len(points.is_point), np.nan)
    for f, atoms in enumerate(frames):
        rows = np.flatnonzero((points.frame_index == f) & points.is_point)
        pair[rows] = bond_pair_energies(atoms, points.bond_atoms[rows],
                                        points.bond_length[rows])
    return LjData(frames, points, pair, np.array([a.info["energy"] for a in frames]),
                  np.concatenate([a.arrays["local_energy"] for a in frames]),
                  np.array([len(a) for a in frames]), split_frames(len(frames),
                                                                   config.split_seed))


# -- scoring ------------------------------------------------------------------------------------
def score_ensemble(ensemble: TrainedEnsemble, data: LjData, model: str,
                   frames: np.ndarray) -> list[dict]:
    """Per member: totals, atomic energies (own + half bonds) and bond energies on ``frames``."""
    frames = list(frames)
    selected = frame_rows(data.points.frame_index, frames)
    full = data.points.select_frames(frames)  # the rows of ``selected``, frames renumbered
    keep = (full.is_point & ("bonds" in model)) | (~full.is_point & ("atoms" in model))
    rows = full.take(np.flatnonzero(keep))
    energies = row_energies(ensemble, rows)
    totals = frame_totals(energies, rows)
    counts = data.atoms_per_frame[frames]
    local = atomic_energies_from_bonds(energies, rows, counts)
    offsets = np.concatenate([[0], np.cumsum(data.atoms_per_frame)])
    local_ref = np.concatenate([data.local_energy[offsets[f]:offsets[f + 1]] for f in frames])
    species = full.species_index[~full.is_point]
    projector = gauge_projector([data.frames[f] for f in frames], data.points.spec)
    pair = data.pair_energy[selected][keep][rows.is_point]
    bond_type = rows.species_index[rows.is_point]
    out = []
    for m in range(len(ensemble.seeds)):
        aligned = align_per_species(local_ref, local[m], species)
        row = {
            "total_r2": r2(data.energies[frames], totals[m]),
            "total_per_atom_rmse": rmse(data.energies[frames] / counts, totals[m] / counts),
            "local_r2": r2(local_ref, local[m]),
            "local_r2_aligned": r2_within_species(local_ref, aligned, species),
            "local_rmse_aligned": rmse(local_ref, aligned),
            "local_r2_gauge": gauge_projected_local_r2(projector, local_ref, local[m]),
            "bond_r2": float("nan"), "bond_r2_aligned": float("nan"),
            "bond_rmse": float("nan"),
        }
        if len(pair):
            bond_pred = energies[m][rows.is_point]
            bond_aligned = align_per_species(pair, bond_pred, bond_type)
            row.update(bond_r2=r2(pair, bond_pred),
                       bond_r2_aligned=r2_within_species(pair, bond_aligned, bond_type),
                       bond_rmse=rmse(pair, bond_pred))
        out.append(row)
    return out


# -- the LJ study -------------------------------------------------------------------------------
def cell_name(model: str, activation: str, width: int) -> str:
    return f"{model.replace('+', '_')}_{activation}_w{width}"


def train_cell(config: LjStudyConfig, data: LjData, cell: tuple[str, str, int],
               progress: bool = False) -> tuple[TrainedEnsemble, list[dict]]:
    model, activation, width = cell
    architecture = Architecture((width,) if width else (), activation)
    rows = data.model_rows(model)
    ensemble = train_ensemble(architecture, rows.descriptors, data.energies,
                              data.split.train, data.split.validation, list(config.seeds),
                              config.training, progress=progress)
    scores = score_ensemble(ensemble, data, model, data.split.test)
    out = []
    for m, seed in enumerate(config.seeds):
        out.append({"model": model, "activation": activation, "width": width, "seed": seed,
                    "n_params": ensemble.networks.per_species, **scores[m],
                    "best_iteration": ensemble.iterations[m],
                    "cell_seconds": ensemble.seconds, "n_train": len(data.split.train),
                    "n_test": len(data.split.test)})
    return ensemble, out


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def run_lj_study(config: LjStudyConfig, out: str | Path, progress: bool = True,
                 stop_after: int | None = None) -> Path:
    """Train every unfinished cell; ``OUT/cells/<cell>.csv`` each, ``OUT/results.csv`` all.

    Resumable: a cell counts as finished once its CSV exists (written last, atomically).
    """
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.json"
    # through the config type, so settings added to it since (defaults) compare equal
    if config_path.is_file() and lj_config_from_json(config_path).to_dict() != config.to_dict():
        raise PointsConfigError(f"{out} holds a study with another config ({config_path}); "
                                "use a new --out")
    atomic_write_text(config_path, json.dumps(config.to_dict(), indent=1) + "\n")
    data = load_lj_data(config, out, progress=progress)
    cells_dir = out / "cells"
    cells_dir.mkdir(exist_ok=True)
    todo = [c for c in config.cells() if not (cells_dir / f"{cell_name(*c)}.csv").is_file()]
    trained = 0
    for cell in tqdm(todo, desc="points lj", unit="cell", disable=not progress):
        if stop_after is not None and trained >= stop_after:
            break
        ensemble, rows = train_cell(config, data, cell)
        name = cell_name(*cell)
        torch.save(ensemble.to_dict(), cells_dir / f".{name}.pt.tmp")
        (cells_dir / f".{name}.pt.tmp").replace(cells_dir / f"{name}.pt")
        atomic_write_text(cells_dir / f"{name}.csv", _csv_text(rows, RESULT_COLUMNS))
        trained += 1
    return _write_results(config, out)


def _write_results(config: LjStudyConfig, out: Path) -> Path:
    """``OUT/results.csv``: the rows of every finished cell, in the config's cell order."""
    results = []
    for cell in config.cells():
        path = out / "cells" / f"{cell_name(*cell)}.csv"
        if path.is_file():
            with open(path) as handle:
                results += list(csv.DictReader(handle))
    atomic_write_text(out / "results.csv", _csv_text(results, RESULT_COLUMNS))
    return out / "results.csv"


def lj_config_from_json(path: str | Path) -> LjStudyConfig:
    """The :class:`LjStudyConfig` a study wrote to ``OUT/config.json``."""
    data = json.loads(Path(path).read_text())
    return LjStudyConfig(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in data.items() if k not in ("spec", "training")},
                         spec=DescriptorSpec.from_dict(data["spec"]),
                         training=TrainingSettings(**data["training"]))


def rescore_lj_study(out: str | Path, progress: bool = True) -> Path:
    """Score every finished cell again from its saved ensemble, without training.

    The score columns (totals, atomic, gauge-projected and bond scores) are recomputed on the
    test frames; the training columns (n_params, best_iteration, cell_seconds, ...) are kept.
    Unfinished cells stay unfinished. Rewrites ``OUT/cells/<cell>.csv`` and
    ``OUT/results.csv``.
    """
    import torch

    out = Path(out)
    config = lj_config_from_json(out / "config.json")
    data = load_lj_data(config, out, progress=progress)
    score_keys = None
    finished = [c for c in config.cells()
                if (out / "cells" / f"{cell_name(*c)}.csv").is_file()]
    for cell in tqdm(finished, desc="points lj rescore", unit="cell", disable=not progress):
        name = cell_name(*cell)
        csv_path, pt_path = out / "cells" / f"{name}.csv", out / "cells" / f"{name}.pt"
        if not pt_path.is_file():
            raise PointsConfigError(f"{pt_path} missing: cell {name} cannot be rescored")
        ensemble = TrainedEnsemble.from_dict(torch.load(pt_path, weights_only=True))
        with open(csv_path) as handle:
            old = list(csv.DictReader(handle))
        if [int(r["seed"]) for r in old] != list(ensemble.seeds):
            raise PointsConfigError(f"{csv_path}: seeds {[r['seed'] for r in old]} differ "
                                    f"from the saved ensemble's {ensemble.seeds}")
        scores = score_ensemble(ensemble, data, cell[0], data.split.test)
        score_keys = score_keys or set(scores[0])
        rows = [{**{k: v for k, v in o.items() if k not in score_keys}, **s}
                for o, s in zip(old, scores, strict=True)]
        atomic_write_text(csv_path, _csv_text(rows, RESULT_COLUMNS))
    return _write_results(config, out)


def read_table(path: str | Path) -> list[dict]:
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key, value in row.items():
            if key in ("model", "activation", "kind", "system"):
                continue
            number = float(value)
            row[key] = int(number) if key in ("width", "seed", "n_params", "best_iteration",
                                               "n_train", "n_test") else number
    return rows


def summary_table(rows: list[dict], metrics: tuple[str, ...]) -> list[dict]:
    """Mean and std over seeds per (model, activation, width)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["activation"], row["width"]), []).append(row)
    out = []
    for key in sorted(groups, key=lambda k: (MODELS.index(k[0]), k[1] != "linear", k[2])):
        members = groups[key]
        entry = {"model": key[0], "activation": key[1], "width": key[2],
                 "seeds": len(members)}
        for metric in metrics:
            values = np.array([m[metric] for m in members], dtype=float)
            entry[metric] = float(np.mean(values))
            entry[f"{metric}_std"] = float(np.std(values))
        out.append(entry)
    return out


# -- representation limit of bond points --------------------------------------------------------
def bond_spec_search(frames: list, spec: DescriptorSpec, factors: tuple[float, ...],
                     reaches: tuple[float, ...], split_seed: int = 0,
                     progress: bool = True) -> list[dict]:
    """Linear bond models, by least squares, for each (bond cutoff factor, reach).

    ``direct``: bond energy = w_t . B_p + b_t fitted to the exact pair energies of the
    training frames' bonds (the representation's limit: no model on these descriptors that is
    linear per bond type can do better); ``totals``: the same form fitted to the training
    frames' total energies only (what a linear bond model learns from totals). Both scored on
    the test frames' bonds and half-bond atomic energies.
    """
    split = split_frames(len(frames), split_seed)
    energies = np.array([a.info["energy"] for a in frames])
    local_ref = np.concatenate([a.arrays["local_energy"] for a in frames])
    counts = np.array([len(a) for a in frames])
    out = []
    for factor in factors:
        for reach in reaches:
            point_spec = replace(spec, points=bond_types(spec, reach, factor))
            data = compute_point_descriptors(frames, point_spec, with_atoms=False,
                                             progress=progress)
            pair = np.concatenate([
                bond_pair_energies(a, data.bond_atoms[data.frame_index == f],
                                   data.bond_length[data.frame_index == f])
                for f, a in enumerate(frames)])
            fits = linear_bond_fits(data, pair, energies, split.train)
            test_rows = np.isin(data.frame_index, split.test)
            offsets = np.concatenate([[0], np.cumsum(counts)])
            test_atoms = np.concatenate([np.arange(offsets[f], offsets[f + 1])
                                         for f in split.test])
            species = np.concatenate([[spec.type_of(s) - 1 for s in a.get_chemical_symbols()]
                                      for a in frames])[test_atoms]
            row = {"bond_cutoff_factor": factor, "reach": reach,
                   "radii": [p.radius for p in point_spec.points],
                   "bonds_per_frame": len(pair) / len(frames)}
            for name, pred in fits.items():
                local = atomic_energies_from_bonds(pred, data, counts)[0][test_atoms]
                totals = np.bincount(data.frame_index, weights=pred, minlength=len(frames))
                aligned = align_per_species(local_ref[test_atoms], local, species)
                row[name] = {
                    "bond_r2": r2(pair[test_rows], pred[test_rows]),
                    "bond_rmse_meV": 1e3 * rmse(pair[test_rows], pred[test_rows]),
                    "total_r2": r2(energies[split.test], totals[split.test]),
                    "local_r2": r2(local_ref[test_atoms], local),
                    "local_r2_aligned": r2_within_species(local_ref[test_atoms], aligned,
                                                          species)}
            out.append(row)
    return out


def linear_bond_fits(data: PointDescriptors, pair: np.ndarray, energies: np.ndarray,
                     train: np.ndarray) -> dict[str, np.ndarray]:
    """Bond energies of every row from the direct and the totals least-squares fits."""
    values, types = data.descriptors.values, data.species_index
    design = np.concatenate([values, np.ones((len(values), 1))], axis=1)
    kinds = np.unique(types)
    width = design.shape[1]
    train_rows = np.isin(data.frame_index, train)
    direct = np.zeros(len(values))
    for t in kinds:
        rows = types == t
        w, *_ = np.linalg.lstsq(design[rows & train_rows], pair[rows & train_rows], rcond=None)
        direct[rows] = design[rows] @ w
    per_frame = np.zeros((data.n_frames, width * len(kinds)))
    for k, t in enumerate(kinds):
        rows = types == t
        np.add.at(per_frame[:, k * width:(k + 1) * width], data.frame_index[rows], design[rows])
    w, *_ = np.linalg.lstsq(per_frame[train], energies[train], rcond=None)
    totals = np.zeros(len(values))
    for k, t in enumerate(kinds):
        rows = types == t
        totals[rows] = design[rows] @ w[k * width:(k + 1) * width]
    return {"direct": direct, "totals": totals}


# -- cost -------------------------------------------------------------------------------------
def point_costs(frames: list, spec: DescriptorSpec, repeats: int = 1) -> dict:
    """Seconds per frame of descriptors (LAMMPS) for atoms alone, for bond points (+ atoms,
    which the same compute gives) and for grid points (+ atoms), rows per frame, and one
    tanh-16 network on those rows: what a point model costs against an atom-centred one."""
    from toolkit.descriptors import DescriptorSession
    from toolkit.points.descriptors import PointSession

    def timed(session, compute) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            for atoms in frames:
                compute(atoms)
        return (time.perf_counter() - start) / (repeats * len(frames))

    import torch

    from toolkit.models.networks import EnsembleNetworks

    def network_seconds(rows: float) -> float:
        """One tanh-16 network evaluated on ``rows`` descriptor rows (per frame)."""
        layout = EnsembleNetworks(Architecture((16,), "tanh"), 1, spec.n_descriptors)
        theta = layout.initial_theta([0])
        x = torch.randn(max(1, int(round(rows))), spec.n_descriptors, dtype=torch.float64)
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(200):
                layout.raw_atomic(theta, 0, x)
        return (time.perf_counter() - start) / 200

    out = {"frames": len(frames), "atoms_per_frame": float(np.mean([len(a) for a in frames]))}
    with DescriptorSession(spec.atoms_only) as session:
        session.compute(frames[0])
        out["atoms"] = {"s_per_frame": timed(session, session.compute),
                        "rows_per_frame": out["atoms_per_frame"]}
    groups = {"bonds": tuple(p for p in spec.points if p.kind == "bond"),
              "grid": tuple(p for p in spec.points if p.kind == "grid")}
    for kind, points in groups.items():
        if not points:
            continue
        with PointSession(replace(spec, points=points)) as session:
            session.compute(frames[0])
            seconds = timed(session, session.compute)
            rows = np.mean([len(session.compute(a)[2]) for a in frames[:3]])
        out[kind] = {"s_per_frame": seconds, "rows_per_frame": float(rows),
                     "point_types": [p.name for p in points]}
    for entry in out.values():
        if isinstance(entry, dict):
            entry["network_tanh16_s_per_frame"] = network_seconds(entry["rows_per_frame"])
    return out


# -- the DFT grid study -------------------------------------------------------------------------
GRID_COLUMNS = [
    "system", "activation", "width", "seed", "total_r2", "total_per_atom_rmse",
    "cell_r2_deformation", "cell_pearson_deformation", "cell_r2_raw", "cell_pearson_raw",
    "best_iteration", "n_train", "n_test", "n_cube_frames",
]


@dataclass(frozen=True)
class GridStudyConfig:
    """Grid-centred models on the shipped DFT totals, scored on frames with kept cubes."""

    systems: tuple[str, ...] = ("Ar32", "Ar16Kr16")
    dataset: str = "datasets/dft"  # SYSTEM.extxyz and SYSTEM.fit.json (read only)
    cubes: str = "runs/points/dft"  # SYSTEM/manifest.json from `aetk points dft-cubes`
    points_per_edge: int = 8
    radius: float | None = None  # grid point SNAP radius, A (None: mean element radius)
    activation: str = "tanh"
    widths: tuple[int, ...] = (0, 1, 4, 16)  # 0: linear, no hidden layer
    seeds: tuple[int, ...] = (0, 1, 2)
    split_seed: int = 0
    spec: DescriptorSpec = field(default_factory=DescriptorSpec)
    training: TrainingSettings = TrainingSettings(max_iterations=500, patience=50)


def _frame_centred_scores(reference: np.ndarray, predicted: np.ndarray,
                          frame: np.ndarray) -> tuple[float, float]:
    """R2 and Pearson r of grid energies after removing each frame's mean from both (a
    constant per grid point is invisible to totals at a fixed number of points)."""
    ref = reference - np.bincount(frame, reference)[frame] / np.bincount(frame)[frame]
    pred = predicted - np.bincount(frame, predicted)[frame] / np.bincount(frame)[frame]
    return r2(ref, pred), float(np.corrcoef(ref, pred)[0, 1])


def grid_references(config: GridStudyConfig, system: str, frames: list, shape, slope: float,
                    out: Path, progress: bool = True) -> tuple[list[int], list[dict]]:
    """Grid energies of the frames with kept cubes (cached in OUT/SYSTEM/reference-*.npz)."""
    from toolkit.points.dft_cubes import box_label
    from toolkit.points.energy_density import grid_reference

    manifest_path = Path(config.cubes) / system / "manifest.json"
    if not manifest_path.is_file():
        raise PointsConfigError(f"{manifest_path} missing: run `aetk points dft-cubes --data "
                                f"{config.dataset}/{system}.extxyz --out {config.cubes}/"
                                f"{system}` first")
    manifest = json.loads(manifest_path.read_text())
    indices, references = [], []
    for index, workdir in tqdm(list(zip(manifest["frames"], manifest["frame_dirs"],
                                        strict=True)), desc=f"{system} energy density",
                               disable=not progress):
        cache = out / system / f"reference-{index:05d}.json"
        if cache.is_file():
            ref = json.loads(cache.read_text())
        else:
            atoms = frames[index]
            label = box_label(atoms.cell.lengths())
            free = {s: manifest["free_atoms"][f"{s}-{label}"]
                    for s in set(atoms.get_chemical_symbols())}
            ref = grid_reference(workdir, free, shape, slope, atoms.info["energy"])
            result = json.loads((Path(workdir) / "result.json").read_text())
            ref["checks"]["electrostatic_energy_recomputed_eV"] = result["electrostatic_energy"]
            ref["checks"]["electrostatic_energy_shipped_eV"] = float(
                atoms.info["electrostatic_energy"])
            ref = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ref.items()}
            atomic_write_text(cache, json.dumps(ref) + "\n")
        indices.append(int(index))
        references.append(ref)
    return indices, references


def run_dft_grid_study(config: GridStudyConfig, out: str | Path,
                       progress: bool = True) -> dict:
    """Train grid models per system and width; ``OUT/grid_results.csv``, ``OUT/grid.json``."""
    from toolkit.points.placement import grid_shape, grid_type

    out = Path(out)
    rows, summary = [], {"config": {**asdict(config), "spec": config.spec.to_dict(),
                                    "training": config.training.to_dict()}, "systems": {}}
    for system in config.systems:
        frames = read_frames(Path(config.dataset) / f"{system}.extxyz")
        fit = json.loads((Path(config.dataset) / f"{system}.fit.json").read_text())["fit"]
        lengths = np.diag(frames[0].cell.array)
        spacing = float(lengths.mean() / config.points_per_edge)
        spec = replace(config.spec, points=(grid_type(config.spec, spacing, config.radius),))
        shape = grid_shape(lengths, spacing)
        data = compute_point_descriptors(frames, spec, with_atoms=False, progress=progress)
        split = split_frames(len(frames), config.split_seed)
        energies = np.array([a.info["energy"] for a in frames])
        cube_frames, refs = grid_references(config, system, frames, shape, fit["slope"], out,
                                            progress)
        cube_rows = frame_rows(data.frame_index, cube_frames)
        cell_frame = np.repeat(np.arange(len(cube_frames)), int(np.prod(shape)))
        deformation = np.concatenate([r["mapped_eV"] for r in refs])
        raw = np.concatenate([(1.0 + fit["slope"]) * np.asarray(r["raw_eV"]) for r in refs])
        values = data.descriptors.values[cube_rows]
        ceiling = _leave_one_frame_out(values, deformation, cell_frame)
        summary["systems"][system] = {
            "grid_shape": list(shape), "spacing_A": spacing, "radius_A": spec.points[0].radius,
            "cube_frames": cube_frames, "cube_frames_in_test": bool(
                set(cube_frames) <= set(int(i) for i in split.test)),
            "slope": fit["slope"], "linear_ceiling_deformation": ceiling,
            "checks": [r["checks"] for r in refs],
        }
        for width in config.widths:
            activation = config.activation if width else "linear"
            architecture = Architecture((width,) if width else (), activation)
            ensemble = train_ensemble(architecture, data.descriptors, energies, split.train,
                                      split.validation, list(config.seeds), config.training,
                                      progress=False)
            point_e = row_energies(ensemble, data)
            totals = frame_totals(point_e, data)
            counts = np.array([len(a) for a in frames])
            test = list(split.test)
            for m, seed in enumerate(config.seeds):
                cells = point_e[m][cube_rows]
                r2_d, p_d = _frame_centred_scores(deformation, cells, cell_frame)
                r2_r, p_r = _frame_centred_scores(raw, cells, cell_frame)
                rows.append({
                    "system": system, "activation": activation, "width": width, "seed": seed,
                    "total_r2": r2(energies[test], totals[m][test]),
                    "total_per_atom_rmse": rmse(energies[test] / counts[test],
                                                totals[m][test] / counts[test]),
                    "cell_r2_deformation": r2_d, "cell_pearson_deformation": p_d,
                    "cell_r2_raw": r2_r, "cell_pearson_raw": p_r,
                    "best_iteration": ensemble.iterations[m], "n_train": len(split.train),
                    "n_test": len(test), "n_cube_frames": len(cube_frames)})
            np.savez(out / system / f"cells-{activation}-w{width}.npz",
                     model=point_e[:, cube_rows], deformation=deformation, raw=raw,
                     frame=cell_frame, positions=data.positions[cube_rows])
    atomic_write_text(out / "grid_results.csv", _csv_text(rows, GRID_COLUMNS))
    atomic_write_text(out / "grid.json", json.dumps(summary, indent=1) + "\n")
    return summary


def _leave_one_frame_out(values: np.ndarray, target: np.ndarray, frame: np.ndarray) -> dict:
    """Linear fit of frame-centred grid targets on the descriptors, each frame predicted by a
    fit to the others: how much of the field the grid descriptor can represent at all."""
    centred = target - np.bincount(frame, target)[frame] / np.bincount(frame)[frame]
    design = np.concatenate([values, np.ones((len(values), 1))], axis=1)
    predicted = np.zeros_like(centred)
    for f in np.unique(frame):
        train = frame != f
        w, *_ = np.linalg.lstsq(design[train], centred[train], rcond=None)
        predicted[~train] = design[~train] @ w
    r2_value, pearson_value = _frame_centred_scores(centred, predicted, frame)
    return {"r2": r2_value, "pearson": pearson_value, "frames": int(len(np.unique(frame)))}


# -- figures ----------------------------------------------------------------------------------
MODEL_STYLE = {"atoms": ("C0", "o", "atom-centred"), "bonds": ("C3", "s", "bond-centred"),
               "atoms+bonds": ("C2", "^", "atoms + bonds")}


def lj_width_figure(rows: list[dict], out: str | Path) -> list[Path]:
    """Aligned and gauge-projected local R2 (half-bond sums for bond models), bond R2 and
    total R2 against width."""
    import matplotlib.pyplot as plt

    from toolkit.plots import _save

    out = Path(out)
    metrics = ("local_r2_aligned", "local_r2_gauge", "bond_r2", "total_r2")
    table = summary_table(rows, metrics)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    for ax, metric, label in zip(axes, metrics,
                                 ("atomic energies: aligned R$^2$ vs pe/atom",
                                  "atomic energies: gauge-projected R$^2$",
                                  "bond energies: R$^2$ vs exact pair energies",
                                  "total energies: R$^2$"), strict=True):
        for model, (color, marker, name) in MODEL_STYLE.items():
            entries = [e for e in table if e["model"] == model and e["activation"] != "linear"]
            linear = [e for e in table if e["model"] == model and e["activation"] == "linear"]
            if not entries or all(np.isnan(e[metric]) for e in entries):
                continue
            widths = np.array([e["width"] for e in entries])
            mean = np.array([e[metric] for e in entries])
            std = np.array([e[f"{metric}_std"] for e in entries])
            ax.errorbar(widths, mean, yerr=std, color=color, marker=marker, capsize=3,
                        label=f"{name}, tanh")
            if linear and not np.isnan(linear[0][metric]):
                ax.axhline(linear[0][metric], color=color, ls="--", lw=1,
                           label=f"{name}, linear")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hidden width")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out, "points_lj_width", tight=False)


def lj_bond_figure(study: str | Path, out: str | Path, model: str = "bonds",
                   activation: str = "tanh", width: int = 8, seed: int = 0) -> list[Path]:
    """One member's bond energies against the exact pair energies, and E(r) per bond type."""
    import matplotlib.pyplot as plt
    import torch

    from toolkit.plots import _save
    from toolkit.points.pair_energy import lj_pair_energy

    study, out = Path(study), Path(out)
    config = lj_config_from_json(study / "config.json")
    data = load_lj_data(config, study, progress=False)
    ensemble = TrainedEnsemble.from_dict(torch.load(
        study / "cells" / f"{cell_name(model, activation, width)}.pt", weights_only=True))
    member = ensemble.seeds.index(seed)
    test = list(data.split.test)
    rows = data.model_rows(model).select_frames(test)
    energies = row_energies(ensemble, rows)[member]
    bonds = rows.is_point
    pair = data.pair_energy[frame_rows(data.points.frame_index, test)]
    pair = pair[~np.isnan(pair)]
    spec = config.point_spec()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for t, point in enumerate(spec.points):
        mask = rows.species_index[bonds] == len(spec.elements) + t
        predicted = energies[bonds][mask] * 1e3
        axes[0].scatter(pair[mask] * 1e3, predicted, s=1, alpha=0.3, color=f"C{t}",
                        label=point.name)
        r = rows.bond_length[bonds][mask]
        axes[1].scatter(r, predicted, s=1, alpha=0.2, color=f"C{t}")
        grid = np.linspace(r.min(), r.max(), 200)
        axes[1].plot(grid, lj_pair_energy(grid, *point.pair) * 1e3, color=f"C{t}", lw=1.5,
                     label=f"{point.name}: exact pair energy")
    lo, hi = axes[0].get_xlim()
    axes[0].plot([lo, hi], [lo, hi], "k--", lw=0.8)
    axes[0].set_xlabel("exact pair energy (meV)")
    axes[0].set_ylabel("learned bond energy (meV)")
    axes[0].legend(markerscale=8, fontsize=8)
    axes[1].set_xlabel("bond length (A)")
    axes[1].set_ylabel("bond energy (meV)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{model}, {activation} width {width}, seed {seed}: test frames, trained on "
                 "totals only", fontsize=10)
    fig.tight_layout()
    return _save(fig, out, "points_lj_bonds", tight=False)


def dft_grid_figure(study: str | Path, out: str | Path, width: int = 0,
                    seed_index: int = 0) -> list[Path]:
    """Grid energies against the mapped deformation and raw electrostatic energies."""
    import matplotlib.pyplot as plt

    from toolkit.plots import _save

    study, out = Path(study), Path(out)
    summary = json.loads((study / "grid.json").read_text())
    systems = list(summary["systems"])
    fig, axes = plt.subplots(2, len(systems), figsize=(5 * len(systems), 8), squeeze=False)
    activation = "linear" if width == 0 else summary["config"]["activation"]
    for k, system in enumerate(systems):
        cells = np.load(study / system / f"cells-{activation}-w{width}.npz")
        frame = cells["frame"]
        model = cells["model"][seed_index]
        for row, (key, name) in enumerate((("deformation", "(1 + slope) x deformation"),
                                           ("raw", "(1 + slope) x raw 1/2 rho V_H"))):
            ref = cells[key]
            ref_c = ref - np.bincount(frame, ref)[frame] / np.bincount(frame)[frame]
            mod_c = model - np.bincount(frame, model)[frame] / np.bincount(frame)[frame]
            ax = axes[row, k]
            ax.scatter(ref_c * 1e3, mod_c * 1e3, s=3, alpha=0.5, c=frame, cmap="viridis")
            ax.set_xlabel(f"{name}, centred per frame (meV)")
            ax.set_ylabel("grid-model energy, centred per frame (meV)")
            r2_value, pearson_value = _frame_centred_scores(ref, model, frame)
            ax.set_title(f"{system}: R$^2$ {r2_value:.2f}, r {pearson_value:.2f}", fontsize=10)
    fig.tight_layout()
    return _save(fig, out, "points_dft_grid", tight=False)


# -- tables for the documentation ---------------------------------------------------------------
def _pm(entry: dict, metric: str, digits: int = 4) -> str:
    value, spread = entry[metric], entry[f"{metric}_std"]
    if np.isnan(value):
        return "-"
    return f"{value:.{digits}f} +- {spread:.{digits}f}"


def lj_markdown(rows: list[dict]) -> str:
    """Mean +- std over seeds per model and width: totals, atomic and bond energies."""
    metrics = ("total_r2", "local_r2_aligned", "local_r2_gauge", "local_r2", "bond_r2",
               "bond_r2_aligned", "best_iteration")
    lines = ["| model | width | total R2 | atomic R2 aligned | atomic R2 gauge-projected | "
             "atomic R2 raw | bond R2 | bond R2 aligned | best iteration |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in summary_table(rows, metrics):
        width = "linear" if e["activation"] == "linear" else f"tanh {e['width']}"
        lines.append(f"| {e['model']} | {width} | {_pm(e, 'total_r2')} | "
                     f"{_pm(e, 'local_r2_aligned')} | {_pm(e, 'local_r2_gauge')} | "
                     f"{_pm(e, 'local_r2')} | "
                     f"{_pm(e, 'bond_r2')} | {_pm(e, 'bond_r2_aligned')} | "
                     f"{e['best_iteration']:.0f} |")
    return "\n".join(lines) + "\n"


def search_markdown(search: dict) -> str:
    lines = ["| bond cutoff (sigma_ab) | reach | point radii (A) | bonds/frame | direct: bond R2 "
             "(RMSE meV) | totals: total R2 | totals: bond R2 (RMSE meV) | totals: atomic R2 "
             "aligned |", "|---|---|---|---|---|---|---|---|"]
    for row in search["rows"]:
        d, t = row["direct"], row["totals"]
        lines.append(f"| {row['bond_cutoff_factor']} | {row['reach']} | "
                     f"{', '.join(f'{r:.3f}' for r in row['radii'])} | "
                     f"{row['bonds_per_frame']:.0f} | {d['bond_r2']:.5f} "
                     f"({d['bond_rmse_meV']:.3f}) | {t['total_r2']:.5f} | {t['bond_r2']:.5f} "
                     f"({t['bond_rmse_meV']:.3f}) | {t['local_r2_aligned']:.4f} |")
    return "\n".join(lines) + "\n"


def grid_markdown(rows: list[dict], summary: dict) -> str:
    lines = ["| system | model | total R2 (test frames) | cell R2, deformation | cell r, "
             "deformation | cell R2, raw | cell r, raw |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["system"], row["activation"], row["width"]), []).append(row)
    def pm(members: list[dict], metric: str) -> str:
        values = np.array([m[metric] for m in members], dtype=float)
        return f"{values.mean():.3f} +- {values.std():.3f}"

    for (system, activation, width), members in groups.items():
        name = "linear" if activation == "linear" else f"{activation} {width}"
        lines.append(f"| {system} | {name} | {pm(members, 'total_r2')} | "
                     f"{pm(members, 'cell_r2_deformation')} | "
                     f"{pm(members, 'cell_pearson_deformation')} | "
                     f"{pm(members, 'cell_r2_raw')} | {pm(members, 'cell_pearson_raw')} |")
    lines += ["", "| system | grid | spacing (A) | radius (A) | cube frames | in test split | "
              "linear ceiling R2 (r), leave one frame out |", "|---|---|---|---|---|---|---|"]
    for system, e in summary["systems"].items():
        c = e["linear_ceiling_deformation"]
        lines.append(f"| {system} | {'x'.join(map(str, e['grid_shape']))} | "
                     f"{e['spacing_A']:.3f} | {e['radius_A']:.3f} | {e['cube_frames']} | "
                     f"{e['cube_frames_in_test']} | {c['r2']:.3f} ({c['pearson']:.3f}) |")
    return "\n".join(lines) + "\n"


def cost_markdown(cost: dict) -> str:
    base = cost["atoms"]["s_per_frame"]
    lines = ["| rows | rows per frame | descriptors, s per frame | x atoms alone | tanh-16 "
             "network, ms per frame |", "|---|---|---|---|---|"]
    for key in ("atoms", "bonds", "grid"):
        if key in cost:
            e = cost[key]
            name = "atoms alone" if key == "atoms" else f"atoms + {key}"
            lines.append(f"| {name} | {e['rows_per_frame']:.0f} | {e['s_per_frame']:.4f} | "
                         f"{e['s_per_frame'] / base:.1f} | "
                         f"{1e3 * e['network_tanh16_s_per_frame']:.3f} |")
    return "\n".join(lines) + "\n"
