"""The `aetk fit` job: frames -> descriptors -> split -> train on totals -> potential directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.data import Split, file_hash, frames_hash, read_frames, split_frames, validate_frames
from toolkit.descriptors import Descriptors, DescriptorSpec, compute_descriptors
from toolkit.metrics import energy_metrics
from toolkit.models.networks import Architecture, atomic_energies
from toolkit.models.potential import Potential, read_potential, write_potential
from toolkit.models.training import TrainedEnsemble, TrainingSettings, train_ensemble
from toolkit.models.wall import wall_for


@dataclass
class Dataset:
    """Frames with their descriptors and a fixed split: what training and scoring need."""

    path: Path | None
    frames: list[Atoms]
    descriptors: Descriptors
    split: Split
    split_seed: int

    @property
    def energies(self) -> np.ndarray:
        return np.array([a.info["energy"] for a in self.frames])

    @property
    def local_energies(self) -> np.ndarray | None:
        if all("local_energy" in a.arrays for a in self.frames):
            return np.concatenate([a.arrays["local_energy"] for a in self.frames])
        return None

    def provenance(self) -> dict:
        return {"path": str(self.path) if self.path else None,
                "sha256": file_hash(self.path) if self.path else None,
                "frames_hash": frames_hash(self.frames), "n_frames": len(self.frames),
                "split_seed": self.split_seed, "split": self.split.as_dict()}


def load_dataset(path: str | Path, spec: DescriptorSpec, split_seed: int = 0,
                 progress: bool = True, comm=None) -> Dataset:
    frames = read_frames(path)
    validate_frames(frames, path, require=("energy",), cutoff=spec.cutoff, species=spec.elements)
    descriptors = compute_descriptors(frames, spec, source=path, progress=progress, comm=comm)
    return Dataset(Path(path), frames, descriptors, split_frames(len(frames), split_seed),
                   split_seed)


def ensemble_scores(ensemble: TrainedEnsemble, dataset: Dataset, frames) -> list[dict]:
    """Metrics of every member on the given frames (usually the test split)."""
    frames = list(frames)
    subset = dataset.descriptors.select_frames(frames)
    local = atomic_energies(ensemble.networks, ensemble.theta, ensemble.normalisation,
                            subset.values, subset.species_index)
    reference_local = None
    if dataset.local_energies is not None:
        reference_local = np.concatenate(
            [dataset.frames[f].arrays["local_energy"] for f in frames])
    n_atoms = np.bincount(subset.frame_index).astype(float)
    out = []
    for member in local:
        totals = np.bincount(subset.frame_index, weights=member, minlength=len(frames))
        out.append(energy_metrics(dataset.energies[frames], totals, reference_local, member,
                                  subset.species_index, dataset.descriptors.spec.species,
                                  n_atoms))
    return out


def fit_potential(
    data: str | Path,
    out: str | Path,
    architecture: Architecture,
    seed: int = 0,
    spec: DescriptorSpec | None = None,
    split_seed: int = 0,
    settings: TrainingSettings | None = None,
    progress: bool = True,
    wall: bool = True,
) -> tuple[Potential, dict]:
    """Train one potential on the totals of ``data``'s training frames and export it.

    ``wall``: add the repulsive wall below the closest pair of any frame in ``data``
    (toolkit/models/wall.py); it is zero on all of them, so training and metrics are unchanged.
    """
    spec = spec or DescriptorSpec()
    dataset = load_dataset(data, spec, split_seed=split_seed, progress=progress)
    # placed before training, so data the wall cannot go below fails at once, not after it
    repulsive_wall = wall_for(dataset.frames, spec.elements) if wall else None
    ensemble = train_ensemble(architecture, dataset.descriptors, dataset.energies,
                              dataset.split.train, dataset.split.validation, seeds=[seed],
                              settings=settings, progress=progress)
    metrics = ensemble_scores(ensemble, dataset, dataset.split.test)[0]
    meta = {
        "seed": seed,
        "data": dataset.provenance(),
        "training": {
            "objective": "mean over frames of (E_ref - sum_i e_i)^2 / N (totals only)",
            "settings": (settings or TrainingSettings()).to_dict(),
            "best_iteration": ensemble.iterations[0],
            "train_loss": ensemble.train_loss[0],
            "validation_loss": ensemble.validation_loss[0],
            "seconds": ensemble.seconds,
        },
        "test_metrics_pytorch": metrics,
    }
    write_potential(out, ensemble.member(0), meta, wall=repulsive_wall)
    return read_potential(out), metrics
