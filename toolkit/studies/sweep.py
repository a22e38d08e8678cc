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

from toolkit.data import atomic_write_text
from toolkit.descriptor_spec import DescriptorSpec
from toolkit.errors import AetkError
from toolkit.models.fitting import Dataset, ensemble_scores, load_dataset
from toolkit.models.networks import ACTIVATIONS, Architecture, SpeciesNetworks
from toolkit.models.training import TrainedEnsemble, TrainingSettings, train_ensemble
from toolkit.portable import progress_bar

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
    bundle: str = ""  # folder of descriptor bundles <system>.npz (toolkit/bundle.py): train
    # from them instead of frames, where LAMMPS and ASE are not needed


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
    train_frames: tuple[int, ...] = ()  # data-size axis: train on the first n frames of a
    # fixed shuffle of the training split (nested sets; validation and test unchanged)

    def cells(self) -> list[tuple]:
        """(system, activation, depth, width), with n_train appended on a data-size axis."""
        base = [(s, a, d, w) for s in self.systems for a in self.activations
                for d in self.depths for w in self.widths]
        if not self.train_frames:
            return base
        return [(*cell, n) for cell in base for n in self.train_frames]

    def to_dict(self) -> dict:
        data = asdict(self.data)
        if not data["bundle"]:  # keys of new options only when used: older sweeps' stored
            del data["bundle"]  # config.json files stay equal to their configs
        out = {"name": self.name, "systems": list(self.systems),
               "activations": list(self.activations), "depths": list(self.depths),
               "widths": list(self.widths), "seeds": list(self.seeds),
               "split_seed": self.split_seed, "data": data,
               "descriptor": self.spec.to_dict(), "training": self.training.to_dict()}
        if self.train_frames:
            out["train_frames"] = list(self.train_frames)
        return out


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
    _take(raw, {"sweep", "data", "descriptor", "training"}, str(path))
    sweep = _take(raw.get("sweep", {}), {"name", "systems", "activations", "depths", "widths",
                                         "seeds", "split_seed", "train_frames"},
                  f"{path} [sweep]")
    for key in ("systems", "activations", "depths", "widths", "seeds"):
        if not sweep.get(key):
            raise SweepConfigError(f"{path} [sweep]: '{key}' must be a non-empty list")
    bad = set(sweep["activations"]) - set(ACTIVATIONS)
    if bad:
        raise SweepConfigError(f"{path}: activations {sorted(bad)} are not evaluated by LAMMPS "
                               f"mliap nn; use {ACTIVATIONS}")
    from toolkit.species import SYSTEMS

    if set(sweep["systems"]) - set(SYSTEMS):
        raise SweepConfigError(f"{path}: systems must be among {sorted(SYSTEMS)}")
    data = _take(raw.get("data", {}), {"reference", "frames", "seed", "files", "bundle"},
                 f"{path} [data]")
    training = _take(raw.get("training", {}), set(TrainingSettings.__dataclass_fields__),
                     f"{path} [training]")
    train_frames = tuple(int(n) for n in sweep.get("train_frames", ()))
    if any(n < 1 for n in train_frames) or len(set(train_frames)) != len(train_frames):
        raise SweepConfigError(f"{path} [sweep]: train_frames must be distinct positive "
                               f"numbers of training frames, got {list(train_frames)}")
    spec = (DescriptorSpec.from_dict(raw["descriptor"], source=f"{path} [descriptor]")
            if "descriptor" in raw else DescriptorSpec())
    return SweepConfig(
        name=sweep.get("name", path.stem),
        systems=tuple(sweep["systems"]), activations=tuple(sweep["activations"]),
        depths=tuple(int(d) for d in sweep["depths"]),
        widths=tuple(int(w) for w in sweep["widths"]),
        seeds=tuple(int(s) for s in sweep["seeds"]), split_seed=int(sweep.get("split_seed", 0)),
        data=DataConfig(**data), spec=spec, training=TrainingSettings(**training),
        train_frames=train_frames,
    )


# -- data --------------------------------------------------------------------------------------
def data_path(config: SweepConfig, system: str, out: Path) -> Path:
    if config.data.bundle:  # the frames the bundle was made from (for export, transfer)
        from toolkit.bundle import bundle_meta

        return Path(bundle_meta(bundle_path(config, system))["source"]["path"])
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


def bundle_path(config: SweepConfig, system: str) -> Path:
    """The descriptor bundle of ``system`` in the config's bundle folder."""
    return Path(config.data.bundle) / f"{system}.npz"


def load_system(config: SweepConfig, system: str, path: Path | None) -> Dataset:
    """A system's data set: from its bundle (numpy only) or from frames (LAMMPS)."""
    if config.data.bundle:
        from toolkit.bundle import BundleError, read_bundle

        dataset = read_bundle(bundle_path(config, system), spec=config.spec)
        if dataset.split_seed != config.split_seed:
            raise BundleError(f"{bundle_path(config, system)} holds the split of seed "
                              f"{dataset.split_seed}, the sweep uses split_seed "
                              f"{config.split_seed}; remake the bundle with this config")
        return dataset
    return load_dataset(path, config.spec, config.split_seed, progress=False)


def write_sweep_bundles(config: SweepConfig, out: str | Path, work: str | Path,
                        precision: str = "float32", progress: bool = True) -> list[Path]:
    """A descriptor bundle per system of ``config`` in ``out`` (frames made in ``work``).

    Frames come from ``[data.files]`` or are generated into ``work/data/`` exactly as
    :func:`run_sweep` would; descriptors through LAMMPS (cached).
    """
    from toolkit.bundle import write_bundle

    if config.data.bundle:
        raise SweepConfigError("this config reads bundles ([data] bundle); write bundles from "
                               "a config that names frames or the classical reference")
    paths = ensure_data(config, Path(work), progress=progress)
    written = []
    for system, path in paths.items():
        dataset = load_dataset(path, config.spec, config.split_seed, progress=progress)
        written.append(write_bundle(Path(out) / f"{system}.npz", dataset, system, precision))
    return written


# -- cells -------------------------------------------------------------------------------------
def cell_id(system: str, activation: str, depth: int, width: int,
            n_train: int | None = None) -> str:
    base = f"{system}_{activation}_d{depth}_w{width}"
    return base if n_train is None else f"{base}_n{n_train}"


def cell_cost(config: SweepConfig, cell: tuple) -> float:
    _, _, depth, width = cell[:4]
    d = config.spec.n_descriptors
    frames = cell[4] if len(cell) > 4 else config.data.frames
    return (d * width + (depth - 1) * width * width + width) * frames


def training_frames(dataset: Dataset, n_train: int | None, where: str = "") -> np.ndarray:
    """The training frames of a cell: all of the split, or the first ``n_train`` of a fixed
    shuffle of them (seeded by the split seed), so smaller sets are subsets of larger ones."""
    train = np.asarray(dataset.split.train)
    if n_train is None:
        return train
    if n_train > len(train):
        raise SweepConfigError(f"{where}train_frames {n_train} is more than the {len(train)} "
                               "training frames of the data (70% of its frames); make more "
                               "frames ([data] frames) or use smaller train_frames")
    order = np.random.default_rng(dataset.split_seed).permutation(len(train))
    return np.sort(train[order[:n_train]])


def assign_cells(config: SweepConfig, rank: int, size: int,
                 only: dict[str, set[str]] | None = None) -> list[tuple]:
    """Largest cells first, dealt round robin: a fixed rule, so every rank knows its share."""
    ordered = sorted((c for c in config.cells() if selected(c, only)),
                     key=lambda c: (-cell_cost(config, c), c))
    return ordered[rank::size]


def train_cell(config: SweepConfig, dataset: Dataset, cell: tuple,
               progress: bool = False) -> tuple[TrainedEnsemble, list[dict]]:
    system, activation, depth, width = cell[:4]
    train = training_frames(dataset, cell[4] if len(cell) > 4 else None, f"{system}: ")
    architecture = Architecture((width,) * depth, activation)
    ensemble = train_ensemble(architecture, dataset.descriptors, dataset.energies,
                              train, dataset.split.validation,
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
            "n_train": len(train), "n_test": len(dataset.split.test),
        })
    return ensemble, rows


def _rows_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def save_cell(out: Path, cell: tuple, ensemble: TrainedEnsemble, rows: list[dict]) -> None:
    """Parameters first, rows last: a cell counts as finished only once its CSV exists."""
    cells = out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    name = cell_id(*cell)
    tmp = cells / f".{name}.{os.getpid()}.pt.tmp"
    torch.save(ensemble.to_dict(), tmp)
    os.replace(tmp, cells / f"{name}.pt")
    atomic_write_text(cells / f"{name}.csv", _rows_csv(rows))


def finished_cells(out: Path) -> set[str]:
    return {p.stem for p in (out / "cells").glob("*.csv")} if (out / "cells").is_dir() else set()


def missing_cells(config: SweepConfig, out: str | Path) -> list[tuple]:
    """Cells of ``config`` without a finished result in ``out``, in the config's order."""
    done = finished_cells(Path(out))
    return [cell for cell in config.cells() if cell_id(*cell) not in done]


def describe_missing(config: SweepConfig, missing: list[tuple]) -> str:
    """Which cells have not run, grouped by (system, activation, depth[, n_train])."""
    if not missing:
        return f"all {len(config.cells())} cells finished"
    groups: dict[tuple, list[int]] = {}
    for cell in missing:
        key = (*cell[:3], *cell[4:])
        groups.setdefault(key, []).append(cell[3])
    lines = [f"{len(missing)} of {len(config.cells())} cells have not run (no row is reported "
             "for them):"]
    for key, widths in groups.items():
        label = f"{key[0]} {key[1]} depth {key[2]}" + (f" n_train {key[3]}" if len(key) > 3
                                                       else "")
        lines.append(f"  {label}: widths {', '.join(map(str, sorted(widths)))}")
    return "\n".join(lines)


def collect_results(config: SweepConfig, out: Path) -> Path:
    """Rebuild results.csv from finished cells, in the config's cell order, seeds ascending."""
    rows = []
    for cell in config.cells():
        path = out / "cells" / f"{cell_id(*cell)}.csv"
        if path.is_file():
            with open(path) as handle:
                rows += list(csv.DictReader(handle))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", text.getvalue())
    return out / "results.csv"


CELL_FIELDS = ("system", "activation", "depth", "width", "n_train")


def parse_only(items: list[str] | None) -> dict[str, set[str]]:
    """``["system=ArKr", "width=1,2,4"]`` -> {field: allowed values as text}."""
    only: dict[str, set[str]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        if not sep or key not in CELL_FIELDS or not values:
            raise SweepConfigError(f"--only {item!r}: write FIELD=V1,V2 with FIELD one of "
                                   f"{', '.join(CELL_FIELDS)}")
        only.setdefault(key, set()).update(v.strip() for v in values.split(","))
    return only


def selected(cell: tuple, only: dict[str, set[str]] | None) -> bool:
    """Whether ``cell`` passes the ``--only`` filters."""
    return all(str(value) in only[field] for field, value in zip(CELL_FIELDS, cell,
                                                                 strict=False)
               if only and field in only)


def run_sweep(config: SweepConfig, out: str | Path, progress: bool = True, comm=None,
              stop_after: int | None = None, only: dict[str, set[str]] | None = None) -> Path:
    """Train every unfinished cell (this rank's share under MPI) and write results.csv.

    ``stop_after``: train at most this many cells, then return (for tests of resuming).
    ``only``: train only the cells these filters select (:func:`parse_only`), e.g. a slice
    of a grid too large for one machine; ``aetk report`` lists the cells still missing.
    """
    from toolkit.models.training import resolve_device
    from toolkit.portable import world_comm

    resolve_device(config.training.device)  # a missing GPU is refused before any work
    comm = comm or world_comm()
    rank, size = comm.Get_rank(), comm.Get_size()
    out = Path(out)
    paths: dict[str, Path | None] = {s: None for s in config.systems}
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(config.to_dict(), indent=1) + "\n")
        if not config.data.bundle:
            paths = ensure_data(config, out, progress=progress)
    comm.Barrier()
    if rank != 0 and not config.data.bundle:
        paths = {s: data_path(config, s, out) for s in config.systems}

    done = finished_cells(out)
    chosen = [c for c in config.cells() if selected(c, only)]
    if not chosen:
        raise SweepConfigError(f"--only selects none of the {len(config.cells())} cells")
    todo = [c for c in assign_cells(config, rank, size, only) if cell_id(*c) not in done]
    datasets: dict[str, Dataset] = {}
    bar = progress_bar(total=len(todo), desc=f"sweep {config.name}", unit="cell",
                       disable=not progress or rank != 0)
    trained = 0
    with bar:
        for cell in todo:
            if stop_after is not None and trained >= stop_after:
                break
            system = cell[0]
            if system not in datasets:
                datasets[system] = load_system(config, system, paths[system])
            start = time.perf_counter()
            ensemble, rows = train_cell(config, datasets[system], cell)
            save_cell(out, cell, ensemble, rows)
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
        train_frames=tuple(data.get("train_frames", ())))


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
