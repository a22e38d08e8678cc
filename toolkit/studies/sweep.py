"""Architecture sweeps: systems x activations x depths x widths x seeds -> one results table.

A *cell* is (system, activation, depth, width); all seeds of a cell train together as one
batched ensemble (members stay independent, see training.py). Descriptors are computed
once per system. Each finished cell is written atomically to ``OUT/cells/<cell>.csv``
(rows) and ``OUT/cells/<cell>.pt`` (parameters, so any member can be exported later);
``OUT/results.csv`` is rebuilt from them. A killed sweep therefore resumes at the first
unfinished cell and can neither lose nor duplicate a finished row.

Under ``mpirun -np N`` cells are dealt out over ranks by a fixed rule (largest first,
round robin), each rank training with one thread; results are identical to a serial
sweep run with ``threads = 1``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from toolkit.data import atomic_write_text
from toolkit.descriptors import DescriptorSpec
from toolkit.errors import AetkError
from toolkit.models.fitting import Dataset, ensemble_scores, load_dataset
from toolkit.models.networks import ACTIVATIONS, Architecture, SpeciesNetworks
from toolkit.models.training import TrainedEnsemble, TrainingSettings, train_ensemble
from toolkit.studies.invariant import INVARIANT_COLUMNS, InvariantConfig, invariant_columns

RESULT_COLUMNS = [
    "system", "activation", "depth", "width", "seed", "hidden", "n_params",
    "total_r2", "total_pearson", "total_rmse", "total_per_atom_rmse",
    "local_r2", "local_pearson", "local_rmse", "local_r2_aligned", "local_rmse_aligned",
    "best_iteration", "train_loss", "validation_loss", "cell_seconds", "n_train", "n_test",
]


class SweepConfigError(AetkError, ValueError):
    pass


@dataclass(frozen=True)
class DataConfig:
    """Where each system's frames come from: files, or the classical reference made here."""

    reference: str = "lj"
    frames: int = 1000
    seed: int = 1
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepConfig:
    name: str
    systems: tuple[str, ...]
    activations: tuple[str, ...]
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    seeds: tuple[int, ...]
    split_seed: int = 0
    data: DataConfig = DataConfig()
    spec: DescriptorSpec = field(default_factory=DescriptorSpec)
    training: TrainingSettings = TrainingSettings()
    invariant: InvariantConfig | None = None  # optional [invariant] table: extra columns

    def cells(self) -> list[tuple[str, str, int, int]]:
        return [(s, a, d, w) for s in self.systems for a in self.activations
                for d in self.depths for w in self.widths]

    def to_dict(self) -> dict:
        return {"name": self.name, "systems": list(self.systems),
                "activations": list(self.activations), "depths": list(self.depths),
                "widths": list(self.widths), "seeds": list(self.seeds),
                "split_seed": self.split_seed, "data": asdict(self.data),
                "descriptor": self.spec.to_dict(), "training": self.training.to_dict(),
                **({"invariant": self.invariant.to_dict()} if self.invariant else {})}

    @property
    def columns(self) -> list[str]:
        return RESULT_COLUMNS + (INVARIANT_COLUMNS if self.invariant else [])


def _take(table: dict, known: set[str], where: str) -> dict:
    unknown = set(table) - known
    if unknown:
        raise SweepConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return table


def read_config(path: str | Path) -> SweepConfig:
    """Parse a sweep TOML; unknown keys and impossible values are refused by name."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SweepConfigError(f"{path}: unreadable sweep config ({exc})") from None
    _take(raw, {"sweep", "data", "descriptor", "training", "invariant"}, str(path))
    sweep = _take(raw.get("sweep", {}), {"name", "systems", "activations", "depths", "widths",
                                         "seeds", "split_seed"}, f"{path} [sweep]")
    for key in ("systems", "activations", "depths", "widths", "seeds"):
        if not sweep.get(key):
            raise SweepConfigError(f"{path} [sweep]: '{key}' must be a non-empty list")
    bad = set(sweep["activations"]) - set(ACTIVATIONS)
    if bad:
        raise SweepConfigError(f"{path}: activations {sorted(bad)} are not evaluated by LAMMPS "
                               f"mliap nn; use {ACTIVATIONS}")
    from toolkit.species import SYSTEMS

    data = _take(raw.get("data", {}), {"reference", "frames", "seed", "files"}, f"{path} [data]")
    # any system (e.g. Si) whose frames come from [data] files; the named liquids otherwise
    if set(sweep["systems"]) - set(SYSTEMS) - set(data.get("files", {})):
        raise SweepConfigError(f"{path}: systems must be among {sorted(SYSTEMS)} or have a "
                               "file in [data] files")
    training = _take(raw.get("training", {}), set(TrainingSettings.__dataclass_fields__),
                     f"{path} [training]")
    spec = (DescriptorSpec.from_dict(raw["descriptor"], source=f"{path} [descriptor]")
            if "descriptor" in raw else DescriptorSpec())
    return SweepConfig(
        name=sweep.get("name", path.stem),
        systems=tuple(sweep["systems"]), activations=tuple(sweep["activations"]),
        depths=tuple(int(d) for d in sweep["depths"]),
        widths=tuple(int(w) for w in sweep["widths"]),
        seeds=tuple(int(s) for s in sweep["seeds"]), split_seed=int(sweep.get("split_seed", 0)),
        data=DataConfig(**data), spec=spec, training=TrainingSettings(**training),
        invariant=(InvariantConfig.from_table(raw["invariant"], f"{path} [invariant]")
                   if "invariant" in raw else None),
    )


# -- data --------------------------------------------------------------------------------------
def data_path(config: SweepConfig, system: str, out: Path) -> Path:
    if system in config.data.files:
        return Path(config.data.files[system])
    return out / "data" / f"{system}-{config.data.reference}-{config.data.frames}" \
        f"-s{config.data.seed}.extxyz"


def ensure_data(config: SweepConfig, out: Path, progress: bool = True) -> dict[str, Path]:
    """Frames of every system; the classical reference is generated once and kept."""
    from toolkit.data import write_frames
    from toolkit.reference.classical import ClassicalRun, generate_frames

    paths = {}
    for system in config.systems:
        path = data_path(config, system, out)
        if not path.is_file():
            if system in config.data.files:
                raise SweepConfigError(f"data file {path} for {system} does not exist")
            run = ClassicalRun(system, config.data.reference, n_frames=config.data.frames,
                               seed=config.data.seed)
            write_frames(path, generate_frames(run, progress=progress))
        paths[system] = path
    return paths


# -- cells -------------------------------------------------------------------------------------
def cell_id(system: str, activation: str, depth: int, width: int) -> str:
    return f"{system}_{activation}_d{depth}_w{width}"


def cell_cost(config: SweepConfig, cell: tuple[str, str, int, int]) -> float:
    _, _, depth, width = cell
    d = config.spec.n_descriptors
    return d * width + (depth - 1) * width * width + width


def assign_cells(config: SweepConfig, rank: int, size: int) -> list[tuple]:
    """Largest cells first, dealt round robin: a fixed rule, so every rank knows its share."""
    ordered = sorted(config.cells(), key=lambda c: (-cell_cost(config, c), c))
    return ordered[rank::size]


def train_cell(config: SweepConfig, dataset: Dataset, cell: tuple,
               progress: bool = False) -> tuple[TrainedEnsemble, list[dict]]:
    system, activation, depth, width = cell
    architecture = Architecture((width,) * depth, activation)
    ensemble = train_ensemble(architecture, dataset.descriptors, dataset.energies,
                              dataset.split.train, dataset.split.validation,
                              seeds=list(config.seeds), settings=config.training,
                              progress=progress)
    scores = ensemble_scores(ensemble, dataset, dataset.split.test)
    rows = []
    for m, seed in enumerate(config.seeds):
        s = scores[m]
        local = s.get("local", {})
        aligned = s.get("local_aligned", {})
        rows.append({
            "system": system, "activation": activation, "depth": depth, "width": width,
            "seed": seed, "hidden": "x".join(map(str, architecture.hidden)),
            "n_params": ensemble.networks.per_species,
            "total_r2": s["total"]["r2"], "total_pearson": s["total"]["pearson"],
            "total_rmse": s["total"]["rmse"], "total_per_atom_rmse": s["total_per_atom_rmse"],
            "local_r2": local.get("r2", float("nan")),
            "local_pearson": local.get("pearson", float("nan")),
            "local_rmse": local.get("rmse", float("nan")),
            "local_r2_aligned": aligned.get("r2", float("nan")),
            "local_rmse_aligned": aligned.get("rmse", float("nan")),
            "best_iteration": ensemble.iterations[m], "train_loss": ensemble.train_loss[m],
            "validation_loss": ensemble.validation_loss[m], "cell_seconds": ensemble.seconds,
            "n_train": len(dataset.split.train), "n_test": len(dataset.split.test),
        })
    return ensemble, rows


def _rows_csv(rows: list[dict], columns: list[str] = RESULT_COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def save_cell(out: Path, cell: tuple, ensemble: TrainedEnsemble, rows: list[dict],
              columns: list[str] = RESULT_COLUMNS) -> None:
    """Parameters first, rows last: a cell counts as finished only once its CSV exists."""
    cells = out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    name = cell_id(*cell)
    tmp = cells / f".{name}.{os.getpid()}.pt.tmp"
    torch.save(ensemble.to_dict(), tmp)
    os.replace(tmp, cells / f"{name}.pt")
    atomic_write_text(cells / f"{name}.csv", _rows_csv(rows, columns))


def finished_cells(out: Path) -> set[str]:
    return {p.stem for p in (out / "cells").glob("*.csv")} if (out / "cells").is_dir() else set()


def collect_results(config: SweepConfig, out: Path) -> Path:
    """Rebuild results.csv from finished cells, in the config's cell order, seeds ascending."""
    rows = []
    for cell in config.cells():
        path = out / "cells" / f"{cell_id(*cell)}.csv"
        if path.is_file():
            with open(path) as handle:
                rows += list(csv.DictReader(handle))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=config.columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", text.getvalue())
    return out / "results.csv"


def run_sweep(config: SweepConfig, out: str | Path, progress: bool = True, comm=None,
              stop_after: int | None = None) -> Path:
    """Train every unfinished cell (this rank's share under MPI) and write results.csv.

    ``stop_after``: train at most this many cells, then return (for tests of resuming).
    """
    from toolkit.lammps import world_comm

    comm = comm or world_comm()
    rank, size = comm.Get_rank(), comm.Get_size()
    out = Path(out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(config.to_dict(), indent=1) + "\n")
        paths = ensure_data(config, out, progress=progress)
    comm.Barrier()
    if rank != 0:
        paths = {s: data_path(config, s, out) for s in config.systems}

    done = finished_cells(out)
    todo = [c for c in assign_cells(config, rank, size) if cell_id(*c) not in done]
    datasets: dict[str, Dataset] = {}
    points: dict[str, object] = {}  # system -> invariant points, with an [invariant] table
    bar = tqdm(total=len(todo), desc=f"sweep {config.name}", unit="cell",
               disable=not progress or rank != 0)
    trained = 0
    with bar:
        for cell in todo:
            if stop_after is not None and trained >= stop_after:
                break
            system = cell[0]
            if system not in datasets:
                datasets[system] = load_dataset(paths[system], config.spec, config.split_seed,
                                                progress=False)
            start = time.perf_counter()
            ensemble, rows = train_cell(config, datasets[system], cell)
            if config.invariant is not None:
                if system not in points:
                    reference = None if system in config.data.files else config.data.reference
                    points[system] = config.invariant.points_for(datasets[system], config.spec,
                                                                 reference)
                for row, extra in zip(rows, invariant_columns(ensemble, points[system]),
                                      strict=True):
                    row.update(extra)
            save_cell(out, cell, ensemble, rows, config.columns)
            trained += 1
            bar.set_postfix(cell=cell_id(*cell), s=f"{time.perf_counter() - start:.0f}")
            bar.update(1)
    comm.Barrier()
    if rank == 0:
        collect_results(config, out)
    return out / "results.csv"


def read_results(path: str | Path) -> list[dict]:
    """Rows of a results table with numbers parsed."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    ints = {"depth", "width", "seed", "n_params", "best_iteration", "n_train", "n_test"}
    texts = {"system", "activation", "hidden", "direction"}
    for row in rows:
        for key, value in row.items():
            if key in ints:
                row[key] = int(value)
            elif key not in texts:
                row[key] = float(value)
    return rows


def load_ensemble(out: str | Path, system: str, activation: str, depth: int,
                  width: int) -> TrainedEnsemble:
    """All members of one finished sweep cell."""
    path = Path(out) / "cells" / f"{cell_id(system, activation, depth, width)}.pt"
    if not path.is_file():
        raise SweepConfigError(f"{path}: no such finished sweep cell")
    return TrainedEnsemble.from_dict(torch.load(path, weights_only=True))


def load_member(out: str | Path, system: str, activation: str, depth: int, width: int,
                seed: int) -> SpeciesNetworks:
    """One sweep member as a model."""
    ensemble = load_ensemble(out, system, activation, depth, width)
    if seed not in ensemble.seeds:
        raise SweepConfigError(f"seed {seed} not in sweep cell (seeds {ensemble.seeds})")
    return ensemble.member(ensemble.seeds.index(seed))


def export_member(out: str | Path, system: str, activation: str, depth: int, width: int,
                  seed: int, target: str | Path, wall: bool = True) -> Path:
    """Write one sweep member as a potential directory (same files as `aetk fit`).

    ``wall``: with the repulsive wall below the system's data (toolkit/models/wall.py).
    """
    from toolkit.data import file_hash, read_frames, split_frames
    from toolkit.models.potential import write_potential

    out = Path(out)
    config = _config_from_dict(json.loads((out / "config.json").read_text()))
    model = load_member(out, system, activation, depth, width, seed)
    key = (system, activation, depth, width, seed)
    rows = [r for r in read_results(out)
            if (r["system"], r["activation"], r["depth"], r["width"], r["seed"]) == key]
    from toolkit.models.wall import wall_for

    path = data_path(config, system, out)
    frames = read_frames(path)
    split = split_frames(len(frames), config.split_seed)
    meta = {"seed": seed,
            "sweep": {"directory": str(out), "system": system},
            "test_metrics_sweep": rows[0] if rows else None,
            "data": {"path": str(path), "sha256": file_hash(path), "n_frames":
                     len(split.train) + len(split.validation) + len(split.test),
                     "split_seed": config.split_seed, "split": split.as_dict()}}
    return write_potential(target, model, meta,
                           wall=wall_for(frames, config.spec.elements) if wall else None)


def _config_from_dict(data: dict) -> SweepConfig:
    return SweepConfig(
        name=data["name"], systems=tuple(data["systems"]),
        activations=tuple(data["activations"]), depths=tuple(data["depths"]),
        widths=tuple(data["widths"]), seeds=tuple(data["seeds"]),
        split_seed=data["split_seed"], data=DataConfig(**data["data"]),
        spec=DescriptorSpec.from_dict(data["descriptor"]),
        training=TrainingSettings(**data["training"]),
        invariant=InvariantConfig(**{**data["invariant"], "structures": tuple(
            data["invariant"]["structures"])}) if "invariant" in data else None)


def summarise(rows: list[dict], metric: str) -> dict[tuple, tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]]:
    """(system, activation, depth) -> (widths, mean, std over seeds) of ``metric``."""
    groups: dict[tuple, dict[int, list[float]]] = {}
    for row in rows:
        key = (row["system"], row["activation"], row["depth"])
        groups.setdefault(key, {}).setdefault(row["width"], []).append(row[metric])
    out = {}
    for key, by_width in groups.items():
        widths = np.array(sorted(by_width))
        values = [np.array(by_width[w]) for w in widths]
        out[key] = (widths, np.array([v.mean() for v in values]),
                    np.array([v.std() for v in values]))
    return out
