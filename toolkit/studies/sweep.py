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

import json
import os
import shutil
import time
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from toolkit.config import differences as config_differences
from toolkit.data import atomic_write_text, file_hash
from toolkit.descriptor_spec import DescriptorSpec
from toolkit.errors import AetkError
from toolkit.models.fitting import Dataset, ensemble_scores, load_dataset
from toolkit.models.networks import ACTIVATIONS, Architecture, SpeciesNetworks
from toolkit.models.training import TrainedEnsemble, TrainingSettings, train_ensemble
from toolkit.parallel import barrier, on_rank0, share, world
from toolkit.progress import progress as progress_bar
from toolkit.tables import read_table, write_table

if TYPE_CHECKING:  # invariant.py loads ASE; sweeps from descriptor bundles run without it
    from toolkit.studies.invariant import InvariantConfig

CONFIG_FILE = "config.json"  # the config the finished cells were trained with
DATA_HASHES = "data_sha256.json"  # what each system's cells trained on (data_hashes)
RESULT_COLUMNS = [
    "system", "activation", "depth", "width", "seed", "hidden", "n_params",
    "total_r2", "total_pearson", "total_rmse", "total_per_atom_rmse",
    "local_r2", "local_pearson", "local_rmse", "local_r2_aligned", "local_rmse_aligned",
    "best_iteration", "train_loss", "validation_loss", "cell_seconds", "n_train", "n_test",
]


def result_columns(spec: DescriptorSpec) -> list[str]:
    """Columns of results.csv: the fixed ones, gauge scores, then mean LPR per element
    (toolkit/studies/identifiability.py, rigidity.py)."""
    from toolkit.studies.identifiability import GAUGE_COLUMNS, lpr_columns

    return RESULT_COLUMNS + GAUGE_COLUMNS + lpr_columns(spec)


INT_COLUMNS = {"depth", "width", "seed", "n_params", "best_iteration", "n_train", "n_test"}
TEXT_COLUMNS = {"system", "activation", "hidden", "direction"}  # every other column: float


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
    monitor_every: int = 0  # >0: record test local scores every k iterations (cells/*.monitor)
    split_mode: str = "random"  # or "trajectory": whole trajectories held out for testing
    invariant: InvariantConfig | None = None  # optional [invariant] table: extra columns
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
               "split_seed": self.split_seed, "split_mode": self.split_mode,
               "monitor_every": self.monitor_every, "data": data,
               "descriptor": self.spec.to_dict(), "training": self.training.to_dict()}
        if self.invariant:
            out["invariant"] = self.invariant.to_dict()
        if self.train_frames:
            out["train_frames"] = list(self.train_frames)
        return out

    @property
    def columns(self) -> list[str]:
        """Columns of this sweep's results.csv (invariant-point scores with [invariant])."""
        if not self.invariant:
            return result_columns(self.spec)
        from toolkit.studies.invariant import INVARIANT_COLUMNS

        return result_columns(self.spec) + INVARIANT_COLUMNS


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
                                         "monitor_every", "split", "seeds", "split_seed",
                                         "train_frames"}, f"{path} [sweep]")
    for key in ("systems", "activations", "depths", "widths", "seeds"):
        if not sweep.get(key):
            raise SweepConfigError(f"{path} [sweep]: '{key}' must be a non-empty list")
    bad = set(sweep["activations"]) - set(ACTIVATIONS)
    if bad:
        raise SweepConfigError(f"{path}: activations {sorted(bad)} are not evaluated by LAMMPS "
                               f"mliap nn; use {ACTIVATIONS}")
    from toolkit.species import UnknownSpeciesError, system_composition

    data = _take(raw.get("data", {}), {"reference", "frames", "seed", "files", "bundle"},
                 f"{path} [data]")
    # any system (e.g. Si) may come from [data] files; the classical reference makes the
    # others, so they must be Ar/Kr systems
    for system in sweep["systems"]:
        if system in data.get("files", {}):
            continue
        try:
            system_composition(system)
        except UnknownSpeciesError as exc:
            raise SweepConfigError(f"{path} [sweep] systems: {exc}; or give its frames in "
                                   "[data] files") from None
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
        monitor_every=int(sweep.get("monitor_every", 0)),
        split_mode=str(sweep.get("split", "random")),
        data=DataConfig(**data), spec=spec, training=TrainingSettings(**training),
        invariant=_invariant_table(raw.get("invariant"), f"{path} [invariant]"),
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
        from toolkit.bundle import BundleError, bundle_meta, read_bundle

        dataset = read_bundle(bundle_path(config, system), spec=config.spec)
        made = bundle_meta(bundle_path(config, system))
        if made["system"] != system or (not config.data.files
                                        and made["n_frames"] != config.data.frames):
            raise BundleError(f"{bundle_path(config, system)} holds {made['n_frames']} frames "
                              f"of {made['system']}; the sweep's [data] asks for "
                              f"{config.data.frames} of {system}: remake the bundle with this "
                              "config (aetk bundle --config)")
        if (dataset.split_seed, dataset.split_mode) != (config.split_seed, config.split_mode):
            raise BundleError(f"{bundle_path(config, system)} holds the {dataset.split_mode} "
                              f"split of seed {dataset.split_seed}, the sweep uses the "
                              f"{config.split_mode} split of seed {config.split_seed}; remake "
                              "the bundle with this config (aetk bundle --config)")
        return dataset
    return load_dataset(path, config.spec, config.split_seed, progress=False,
                        split_mode=config.split_mode)


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
        dataset = load_dataset(path, config.spec, config.split_seed, progress=progress,
                               split_mode=config.split_mode)
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
                               "training frames of the data (its split's training part); make more "
                               "frames ([data] frames) or use smaller train_frames")
    order = np.random.default_rng(dataset.split_seed).permutation(len(train))
    return np.sort(train[order[:n_train]])


def assign_cells(config: SweepConfig, comm=None,
                 only: dict[str, set[str]] | None = None) -> list[tuple]:
    """Largest cells first, dealt round robin: a fixed rule, so every rank knows its share
    (none for a rank beyond the number of cells)."""
    ordered = sorted((c for c in config.cells() if selected(c, only)),
                     key=lambda c: (-cell_cost(config, c), c))
    return share(ordered, comm)


def train_cell(config: SweepConfig, dataset: Dataset, cell: tuple, progress: bool = False,
               gauge=None) -> tuple[TrainedEnsemble, list[dict], list[dict] | None]:
    """Train one cell's seeds together; rows of results.csv and, with
    ``config.monitor_every``, the scores along training (else None).

    ``gauge``: the data set's :class:`toolkit.studies.identifiability.DatasetGauge`
    (built once per data set by the caller; made here if None).
    """
    from toolkit.studies.identifiability import DatasetGauge, TrainingRecorder

    system, activation, depth, width = cell[:4]
    train = training_frames(dataset, cell[4] if len(cell) > 4 else None, f"{system}: ")
    architecture = Architecture((width,) * depth, activation)
    gauge = gauge or DatasetGauge(dataset)
    recorder = (TrainingRecorder(gauge, config.monitor_every)
                if config.monitor_every > 0 and gauge.has_local else None)
    ensemble = train_ensemble(architecture, dataset.descriptors, dataset.energies,
                              train, dataset.split.validation,
                              seeds=list(config.seeds), settings=config.training,
                              progress=progress, monitor=recorder)
    scores = ensemble_scores(ensemble, dataset, dataset.split.test)
    extra = gauge.member_rows(ensemble, train_frames=train)  # LPR: the cell's own frames
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
            **extra[m],
        })
    return ensemble, rows, (recorder.records if recorder is not None else None)


def save_cell(out: Path, cell: tuple, ensemble: TrainedEnsemble, rows: list[dict],
              columns: list[str], along_training: list[dict] | None = None) -> None:
    """Parameters (and scores along training) first, rows last: a cell counts as finished
    only once its CSV exists."""
    cells = out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    name = cell_id(*cell)
    tmp = cells / f".{name}.{os.getpid()}.pt.tmp"
    torch.save(ensemble.to_dict(), tmp)
    os.replace(tmp, cells / f"{name}.pt")
    if along_training is not None:
        atomic_write_text(cells / f"{name}.monitor.json",
                          json.dumps({"seeds": ensemble.seeds, "best_iteration":
                                      ensemble.iterations, "records": along_training}) + "\n")
    write_table(cells / f"{name}.csv", rows, columns)


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
            # copied as written, unparsed; cells written before a column existed leave it empty
            rows += read_table(path, texts=config.columns)
    return write_table(out / "results.csv", rows, config.columns)


# -- one config per sweep directory -----------------------------------------------------------
def stored_config(out: str | Path) -> SweepConfig:
    """The config a sweep directory was run with (its ``config.json``)."""
    path = Path(out) / CONFIG_FILE
    try:
        return _config_from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise SweepConfigError(f"{path}: no such file; {Path(out)} is not a sweep directory "
                               "(made by `aetk sweep --out`)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SweepConfigError(f"{path}: unreadable sweep config ({type(exc).__name__}: "
                               f"{exc})") from None


def refuse_changed_config(config: SweepConfig, out: str | Path, what: str = "") -> None:
    """Raise a :class:`SweepConfigError` naming every difference between ``config`` and the
    config ``out`` was run with."""
    path = Path(out) / CONFIG_FILE
    try:
        stored = stored_config(out).to_dict()  # defaults filled in for keys added since
    except SweepConfigError:
        if not path.is_file():
            raise
        stored = json.loads(path.read_text())
    # generic over the dicts, so keys added to the config later are compared too; the name
    # is only a label (the TOML file's stem by default)
    differences = [d for d in config_differences(stored, config.to_dict(), ignore=("name",))
                   # where cells train does not change what they are (a GPU slice of a sweep
                   # resumes on the CPU), provided float64 on both (toolkit/models/objective.py),
                   # nor does summing a linear network's rows per frame first (the same loss
                   # and gradient; docs/paper_regime.md measures both on control cells)
                   if not d.startswith(("training.device:", "training.linear_sums:"))]
    if differences:
        shown = "; ".join(differences[:8]) + (f"; and {len(differences) - 8} more"
                                              if len(differences) > 8 else "")
        raise SweepConfigError(
            f"{Path(out)} holds a sweep run with another config ({path}): {shown}. Its "
            f"finished cells belong to that config{what}")


def data_hashes(config: SweepConfig, out: Path) -> dict[str, str]:
    """What each system's cells train on: the SHA-256 of its frames file; from a descriptor
    bundle, that of the frames the bundle was made from, the bundle's precision and a hash
    of what a sweep reads from it (:func:`toolkit.bundle.bundle_data_key`: a bundle remade
    from the same frames by the same descriptor code trains the same cells, although its
    file's bytes differ)."""
    from toolkit.bundle import bundle_data_key

    return {system: bundle_data_key(bundle_path(config, system)) if config.data.bundle
            else file_hash(data_path(config, system, out)) for system in config.systems}


def refuse_changed_data(config: SweepConfig, out: Path,
                        current: dict[str, str] | None = None) -> None:
    """Raise if a system's frames (or bundle precision) differ from those the sweep was
    trained on. A sweep folder written before bundles were keyed by their frames holds the
    SHA-256 of the bundle file; that file is accepted too. ``current``: ``data_hashes``
    where the caller has them already (each reads every bundle whole)."""
    path = out / DATA_HASHES
    if not path.is_file():
        return
    stored = json.loads(path.read_text())
    changed = []
    for system, digest in (current or data_hashes(config, out)).items():
        if system not in stored or stored[system] == digest:
            continue
        if config.data.bundle:
            from toolkit.bundle import describe_key_change

            if stored[system] == file_hash(bundle_path(config, system)):
                continue  # the same bundle file as the first run (its hash in the old form)
            changed.append(f"{system} ({bundle_path(config, system)}: "
                           f"{describe_key_change(stored[system], digest)})")
        else:
            changed.append(f"{system} ({data_path(config, system, out)})")
    if changed:
        what = "bundles" if config.data.bundle else "frames"
        raise SweepConfigError(
            f"{out}: the {what} of {', '.join(changed)} differ from what the sweep was "
            f"trained on ({path}); its splits, scores and walls belong to the old data: "
            "restore it, or start over with a new --out or --force-new")


def sweep_frames(config: SweepConfig, system: str, out: Path) -> Path:
    """A system's frames file, for the steps that read structures (export, transfer); for
    a sweep from bundles, the file its bundle was made from, refused if it is another."""
    path = data_path(config, system, out)
    if config.data.bundle:
        from toolkit.bundle import refuse_other_source

        refuse_other_source(bundle_path(config, system), path)
    return path


def start_over(out: Path) -> None:
    """Discard the finished cells and tables of ``out`` (generated frames in data/ stay:
    their file names say which settings made them)."""
    shutil.rmtree(out / "cells", ignore_errors=True)
    for name in ("results.csv", "transfer.csv", CONFIG_FILE, DATA_HASHES):
        (out / name).unlink(missing_ok=True)


def prepare_directory(config: SweepConfig, out: Path, force_new: bool = False,
                      progress: bool = True) -> dict[str, Path]:
    """Make ``out`` hold ``config``'s sweep: refuse a resume under another config or other
    frames, or, with ``force_new``, start over; generate missing frames; record the config
    and the frames' hashes. Returns each system's frames file. Rank 0's job."""
    out.mkdir(parents=True, exist_ok=True)
    if force_new:
        start_over(out)
    elif finished_cells(out) and (out / CONFIG_FILE).is_file():
        refuse_changed_config(config, out, what=": resume with that config, use a new --out "
                              "directory, or pass --force-new to discard them and start over")
    paths = ({s: None for s in config.systems} if config.data.bundle
             else ensure_data(config, out, progress=progress))
    current = data_hashes(config, out)  # once: from bundles it reads each one whole
    if finished_cells(out):
        refuse_changed_data(config, out, current)
    atomic_write_text(out / CONFIG_FILE, json.dumps(config.to_dict(), indent=1) + "\n")
    atomic_write_text(out / DATA_HASHES, json.dumps(current, indent=1) + "\n")
    return paths


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


def parse_part(text: str | None) -> tuple[int, int] | None:
    """``--part J/N`` (0 <= J < N) as (J, N); None for None."""
    if text is None:
        return None
    try:
        j, n = (int(v) for v in text.split("/"))
    except ValueError:
        j, n = -1, 0
    if not 0 <= j < n:
        raise SweepConfigError(f"--part {text!r}: write J/N with 0 <= J < N, e.g. --part 0/3 "
                               "for the first of three processes")
    return j, n


def selected(cell: tuple, only: dict[str, set[str]] | None) -> bool:
    """Whether ``cell`` passes the ``--only`` filters."""
    return all(str(value) in only[field] for field, value in zip(CELL_FIELDS, cell,
                                                                 strict=False)
               if only and field in only)


def run_sweep(config: SweepConfig, out: str | Path, progress: bool = True, comm=None,
              stop_after: int | None = None, force_new: bool = False,
              only: dict[str, set[str]] | None = None,
              part: tuple[int, int] | None = None) -> Path:
    """Train every unfinished cell (this rank's share under MPI) and write results.csv.

    A directory that holds finished cells of another config (grid, seeds, data, spec,
    training settings) or other frames is refused with the differences named;
    ``force_new`` discards its cells and starts over.
    ``stop_after``: train at most this many cells, then return (for tests of resuming).
    ``only``: train only the cells these filters select (:func:`parse_only`), e.g. a slice
    of a grid too large for one machine; ``aetk report`` lists the cells still missing.
    ``part``: (J, N) for N processes that share one folder (and one GPU) without MPI: this
    one trains every N-th of its cells from the J-th on, largest first (:func:`parse_part`).
    """
    from toolkit.models.training import resolve_device

    resolve_device(config.training.device)  # a missing GPU is refused before any work
    comm = comm or world()
    rank = comm.Get_rank()
    out = Path(out)
    paths = on_rank0(lambda: prepare_directory(config, out, force_new, progress), comm)

    done = finished_cells(out)
    chosen = [c for c in config.cells() if selected(c, only)]
    if not chosen:
        raise SweepConfigError(f"--only selects none of the {len(config.cells())} cells")
    mine = assign_cells(config, comm, only)
    if part is not None:
        mine = mine[part[0]::part[1]]
    todo = [c for c in mine if cell_id(*c) not in done]
    datasets: dict[str, Dataset] = {}
    gauges: dict = {}
    columns = config.columns
    points: dict[str, object] = {}  # system -> invariant points, with an [invariant] table
    bar = progress_bar(total=len(todo), desc=f"sweep {config.name}", unit="cell",
                       enabled=progress and rank == 0)
    trained = 0
    with bar:
        for cell in todo:
            if stop_after is not None and trained >= stop_after:
                break
            system = cell[0]
            if system not in datasets:
                from toolkit.studies.identifiability import DatasetGauge

                datasets[system] = load_system(config, system, paths[system])
                gauges[system] = DatasetGauge(datasets[system])
            start = time.perf_counter()
            ensemble, rows, along = train_cell(config, datasets[system], cell,
                                               gauge=gauges[system])
            if config.invariant is not None:
                from toolkit.studies.invariant import invariant_columns

                if system not in points:
                    reference = None if system in config.data.files else config.data.reference
                    points[system] = config.invariant.points_for(datasets[system], config.spec,
                                                                 reference)
                for row, extra in zip(rows, invariant_columns(ensemble, points[system]),
                                      strict=True):
                    row.update(extra)
            save_cell(out, cell, ensemble, rows, columns, along)
            trained += 1
            bar.set_postfix(cell=cell_id(*cell), s=f"{time.perf_counter() - start:.0f}")
            bar.update(1)
    barrier(comm)
    if rank == 0:
        collect_results(config, out)
    return out / "results.csv"


def fill_gauge_columns(out: str | Path, bundle: str | None = None,
                       progress: bool = True) -> list[str]:
    """Recompute the gauge columns of the finished cells that hold NaN there, from their
    saved parameters; the other columns (LPR included) stay as trained. Returns the cells
    filled.

    For cells trained from descriptor bundles by a toolkit older than the bundles' use of
    their test-frame structures (commit 7c80c1a and before), whose gauge columns were left
    NaN. ``bundle``: read the data from this folder of bundles instead of the sweep's.
    """
    from toolkit.studies.identifiability import GAUGE_COLUMNS, DatasetGauge

    out = Path(out)
    config = stored_config(out)
    if bundle:
        config = replace(config, data=replace(config.data, bundle=bundle))
    refuse_changed_data(config, out)  # the scores must be of the frames the cells saw
    done = finished_cells(out)
    todo = []
    for cell in config.cells():
        path = out / "cells" / f"{cell_id(*cell)}.csv"
        if cell_id(*cell) in done and any(
                not np.isfinite(r.get("local_r2_gauge", np.nan))
                for r in read_table(path, INT_COLUMNS, TEXT_COLUMNS)):
            todo.append(cell)
    gauges: dict = {}
    filled = []
    try:
        for cell in progress_bar(todo, desc="gauge columns", unit="cell", enabled=progress):
            system = cell[0]
            if system not in gauges:
                frames = None if config.data.bundle else data_path(config, system, out)
                gauges[system] = DatasetGauge(load_system(config, system, frames))
            if not gauges[system].has_local:
                raise SweepConfigError(f"{system}: the sweep's data hold no local energies or "
                                       "no test-frame structures; the gauge columns cannot be "
                                       "made")
            name = cell_id(*cell)
            ensemble = TrainedEnsemble.from_dict(torch.load(out / "cells" / f"{name}.pt",
                                                            weights_only=True))
            rows = read_table(out / "cells" / f"{name}.csv", texts=config.columns)
            scores = gauges[system].member_rows(ensemble, lpr=False)  # LPR stays as trained
            for row, member in zip(rows, scores, strict=True):
                row.update({c: member[c] for c in GAUGE_COLUMNS})
            write_table(out / "cells" / f"{name}.csv", rows, config.columns)
            filled.append(name)
    finally:
        if filled:
            collect_results(config, out)
    return filled


def read_results(path: str | Path) -> list[dict]:
    """Rows of a results table with numbers parsed."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    return read_table(path, INT_COLUMNS, TEXT_COLUMNS)


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
    from toolkit.data import file_hash, make_split, read_frames
    from toolkit.models.potential import write_potential

    out = Path(out)
    config = stored_config(out)
    refuse_changed_data(config, out)  # the wall and the split come from these frames
    model = load_member(out, system, activation, depth, width, seed)
    key = (system, activation, depth, width, seed)
    rows = [r for r in read_results(out)
            if (r["system"], r["activation"], r["depth"], r["width"], r["seed"]) == key]
    from toolkit.models.wall import wall_for

    path = sweep_frames(config, system, out)
    frames = read_frames(path)
    split = make_split(frames, config.split_seed, config.split_mode, path)
    meta = {"seed": seed,
            "sweep": {"directory": str(out), "system": system},
            "test_metrics_sweep": rows[0] if rows else None,
            "data": {"path": str(path), "sha256": file_hash(path), "n_frames":
                     len(split.train) + len(split.validation) + len(split.test),
                     "split_seed": config.split_seed, "split_mode": config.split_mode,
                     "split": split.as_dict()}}
    return write_potential(target, model, meta,
                           wall=wall_for(frames, config.spec.elements) if wall else None)


def _invariant_table(table: dict | None, where: str):
    """The optional [invariant] table (toolkit/studies/invariant.py loads ASE: imported only
    where a sweep has one)."""
    if table is None:
        return None
    from toolkit.studies.invariant import InvariantConfig

    return InvariantConfig.from_table(table, where)


def _invariant_from_dict(data: dict | None):
    if data is None:
        return None
    from toolkit.studies.invariant import InvariantConfig

    return InvariantConfig(**{**data, "structures": tuple(data["structures"])})


def _config_from_dict(data: dict) -> SweepConfig:
    return SweepConfig(
        name=data["name"], systems=tuple(data["systems"]),
        activations=tuple(data["activations"]), depths=tuple(data["depths"]),
        widths=tuple(data["widths"]), seeds=tuple(data["seeds"]),
        split_seed=data["split_seed"], data=DataConfig(**data["data"]),
        monitor_every=int(data.get("monitor_every", 0)),
        split_mode=data.get("split_mode", "random"),
        spec=DescriptorSpec.from_dict(data["descriptor"]),
        training=TrainingSettings(**data["training"]),
        invariant=_invariant_from_dict(data.get("invariant")),
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
