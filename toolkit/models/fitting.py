"""The `aetk fit` job: frames -> descriptors -> split -> train on totals -> potential directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from toolkit.config import ConfigError, JobConfig
from toolkit.data import Split, file_hash, make_split
from toolkit.descriptor_spec import Descriptors, DescriptorSpec
from toolkit.metrics import energy_metrics
from toolkit.models.networks import Architecture, atomic_energies
from toolkit.models.training import TrainedEnsemble, TrainingSettings, train_ensemble

if TYPE_CHECKING:  # LAMMPS and ASE load only where frames are read or potentials written:
    # a sweep from a descriptor bundle (toolkit/bundle.py) trains and scores without them
    from ase import Atoms

    from toolkit.models.potential import Potential


@dataclass
class Dataset:
    """Frames with their descriptors and a fixed split: what training and scoring need.

    ``frames`` is None for a data set read from a descriptor bundle (no ASE there); its
    energies, local energies and content hashes then come from the bundle, and
    ``structures`` holds its test frames' positions and cells.
    """

    path: Path | None
    frames: list[Atoms] | None
    descriptors: Descriptors
    split: Split
    split_seed: int
    split_mode: str = "random"
    energies: np.ndarray | None = None  # (F,) total energies, eV
    local_energy: np.ndarray | None = None  # (n_atoms,) eV, in descriptor-row order
    frames_hash: str | None = None  # toolkit.data.frames_hash of the structures
    source: dict | None = None  # provenance of a bundle (its file, hash, source frames)
    # frame index -> structure without ASE (toolkit.bundle.PlainFrame): a bundle's test frames
    structures: dict | None = None

    def __post_init__(self) -> None:
        if self.frames is not None:
            if self.energies is None:
                self.energies = np.array([a.info["energy"] for a in self.frames])
            if self.local_energy is None and all("local_energy" in a.arrays
                                                 for a in self.frames):
                self.local_energy = np.concatenate([a.arrays["local_energy"]
                                                    for a in self.frames])
        if self.energies is None:
            raise ValueError("a Dataset needs frames or energies")
        self.energies = np.asarray(self.energies, dtype=np.float64)

    @property
    def local_energies(self) -> np.ndarray | None:
        return self.local_energy

    def structures_hash(self) -> str:
        if self.frames_hash is None:
            from toolkit.data import frames_hash

            self.frames_hash = frames_hash(self.frames)
        return self.frames_hash

    def provenance(self) -> dict:
        if self.source is not None:
            return {**self.source, "split_seed": self.split_seed, "split": self.split.as_dict()}
        return {"path": str(self.path) if self.path else None,
                "sha256": file_hash(self.path) if self.path else None,
                "frames_hash": self.structures_hash(), "n_frames": len(self.energies),
                "split_seed": self.split_seed, "split_mode": self.split_mode,
                "split": self.split.as_dict(), **self._test_trajectories()}

    def _test_trajectories(self) -> dict:
        if self.split_mode != "trajectory":
            return {}
        names = sorted({str(self.frames[i].info["trajectory"]) for i in self.split.test})
        return {"test_trajectories": names}


def load_dataset(path: str | Path, spec: DescriptorSpec, split_seed: int = 0,
                 progress: bool = True, comm=None, split_mode: str = "random") -> Dataset:
    """Frames, descriptors and the split (``split_mode``: random 70/10/20, or whole
    trajectories held out for testing, see :func:`toolkit.data.make_split`)."""
    from toolkit.data import read_frames, validate_frames
    from toolkit.descriptors import compute_descriptors

    frames = read_frames(path)
    validate_frames(frames, path, require=("energy",), cutoff=spec.cutoff, species=spec.elements)
    descriptors = compute_descriptors(frames, spec, source=path, progress=progress, comm=comm)
    return Dataset(Path(path), frames, descriptors,
                   make_split(frames, split_seed, split_mode, path), split_seed, split_mode)


def with_anchors(dataset: Dataset, frames: list[Atoms], spec: DescriptorSpec,
                 source: str | Path | None = None, progress: bool = False) -> Dataset:
    """``dataset`` with ``frames`` (e.g. invariant structures with reference totals, `aetk
    invariant --write-frames`) appended and always in the training split.

    Validation and test frames are unchanged (same indices), so scores stay comparable.
    """
    from toolkit.data import validate_frames
    from toolkit.descriptors import compute_descriptors

    validate_frames(frames, source, require=("energy",), cutoff=spec.cutoff,
                    species=spec.elements)
    extra = compute_descriptors(frames, spec, source=source, progress=progress)
    n = dataset.descriptors.n_frames
    old = dataset.descriptors
    descriptors = Descriptors(np.concatenate([old.values, extra.values]),
                              np.concatenate([old.frame_index, extra.frame_index + n]),
                              np.concatenate([old.species_index, extra.species_index]), spec)
    split = Split(np.concatenate([dataset.split.train, np.arange(n, n + len(frames))]),
                  dataset.split.validation, dataset.split.test)
    return Dataset(dataset.path, [*dataset.frames, *frames], descriptors, split,
                   dataset.split_seed, dataset.split_mode)


def ensemble_scores(ensemble: TrainedEnsemble, dataset: Dataset, frames) -> list[dict]:
    """Metrics of every member on the given frames (usually the test split)."""
    frames = list(frames)
    subset = dataset.descriptors.select_frames(frames)
    local = atomic_energies(ensemble.networks, ensemble.theta, ensemble.normalisation,
                            subset.values, subset.species_index)
    reference_local = None
    if dataset.local_energy is not None:
        reference_local = dataset.local_energy[dataset.descriptors.frame_rows(frames)]
    n_atoms = np.bincount(subset.frame_index).astype(float)
    out = []
    for member in local:
        totals = np.bincount(subset.frame_index, weights=member, minlength=len(frames))
        out.append(energy_metrics(dataset.energies[frames], totals, reference_local, member,
                                  subset.species_index, dataset.descriptors.spec.species,
                                  n_atoms))
    return out


@dataclass(frozen=True)
class FitConfig(JobConfig):
    """What `aetk fit` trains: data, architecture, seeds, descriptor spec, training settings.

    Stored in the potential's ``meta.json`` (``fit_config``), so the potential says exactly
    how it was made; ``FitConfig.from_dict(meta["fit_config"])`` refits it.
    """

    data: str  # training frames, extxyz
    hidden: tuple[int, ...] = (16,)  # hidden layer widths
    activation: str = "tanh"
    seed: int = 0  # initialisation
    split_seed: int = 0  # the 70/10/20 split by frame (or of trajectories, below)
    split_mode: str = "random"  # or "trajectory": whole trajectories held out for testing
    spec: DescriptorSpec = field(default_factory=DescriptorSpec)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    wall: bool = True  # repulsive ZBL wall below the data (toolkit/models/wall.py)
    # extxyz frames with reference totals always in the training split (e.g. invariant points
    # from `aetk invariant --write-frames`); the normalisation stays that of the data's
    # training frames, so anchors far from the data do not rescale it
    anchors: str | None = None
    anchor_weight: float = 1.0  # each anchor's loss weight relative to a data frame's

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", str(self.data))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        self.architecture  # noqa: B018  (validates widths and activation)
        if self.anchors is not None:
            object.__setattr__(self, "anchors", str(self.anchors))
        if not float(self.anchor_weight) > 0:
            raise ConfigError("fit config: anchor_weight must be positive")
        for name in ("seed", "split_seed"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                raise ConfigError(f"fit config: {name} must be an integer")

    @property
    def architecture(self) -> Architecture:
        return Architecture(self.hidden, self.activation)


def fit_potential(config: FitConfig, out: str | Path, progress: bool = True
                  ) -> tuple[Potential, dict]:
    """Train one potential on the totals of ``config.data``'s training frames; export to ``out``.

    With ``config.wall`` the repulsive wall goes below the closest pair of any frame in the
    data (toolkit/models/wall.py); it is zero on all of them, so training and metrics are
    unchanged. Frames with NaN/inf in any number are refused before training. Returns the
    potential and the PyTorch metrics on the held-out test frames (NaN scores:
    :func:`undefined_scores`).
    """
    from toolkit.data import read_frames
    from toolkit.models.potential import read_potential, write_potential
    from toolkit.models.wall import wall_for

    spec = config.spec
    dataset = load_dataset(config.data, spec, split_seed=config.split_seed, progress=progress,
                           split_mode=config.split_mode)
    provenance = dataset.provenance()
    normalisation = weights = None
    if config.anchors is not None:
        from toolkit.models.training import fit_normalisation

        train = list(dataset.split.train)
        normalisation = fit_normalisation(dataset.descriptors.select_frames(train),
                                          dataset.energies[train])
        anchor_frames = read_frames(config.anchors)
        n_data = len(dataset.frames)
        dataset = with_anchors(dataset, anchor_frames, spec, source=config.anchors,
                               progress=progress)
        weights = np.where(np.arange(len(dataset.frames)) < n_data, 1.0,
                           float(config.anchor_weight))
    # placed before training, so data the wall cannot go below fails at once, not after it
    repulsive_wall = wall_for(dataset.frames, spec.elements) if config.wall else None
    ensemble = train_ensemble(config.architecture, dataset.descriptors, dataset.energies,
                              dataset.split.train, dataset.split.validation,
                              seeds=[config.seed], settings=config.training, progress=progress,
                              normalisation=normalisation, frame_weights=weights)
    metrics = ensemble_scores(ensemble, dataset, dataset.split.test)[0]
    meta = {
        "seed": config.seed,
        "fit_config": config.to_dict(),
        "data": provenance,
        "training": {
            "objective": "mean over frames of (E_ref - sum_i e_i)^2 / N (totals only)",
            "settings": config.training.to_dict(),
            "best_iteration": ensemble.iterations[0],
            "train_loss": ensemble.train_loss[0],
            "validation_loss": ensemble.validation_loss[0],
            "seconds": ensemble.seconds,
        },
        "test_metrics_pytorch": metrics,
    }
    if config.anchors is not None:
        meta["anchors"] = {"path": config.anchors, "sha256": file_hash(config.anchors),
                           "n_frames": len(anchor_frames), "in": "training split",
                           "weight": float(config.anchor_weight)}
    write_potential(out, ensemble.member(0), meta, wall=repulsive_wall)
    return read_potential(out), metrics


def undefined_scores(metrics: dict, prefix: str = "") -> list[str]:
    """Names of the scores in ``metrics`` that are NaN, each with the reason.

    Labels are checked for NaN/inf before training, so a NaN score means a degenerate test
    set: R2 needs reference values that vary, Pearson r also predictions that vary.
    """
    notes = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            notes += undefined_scores(value, f"{name}.")
        elif isinstance(value, float) and not np.isfinite(value):
            why = ("the reference values of the test frames do not vary (too few test "
                   "frames?)" if key == "r2" else
                   "the reference or the predicted values do not vary" if key == "pearson"
                   else "not finite")
            notes.append(f"{name} is undefined: {why}")
    return notes
