"""Representability ceilings: how well can a descriptor represent a reference partition at all?

A network trained on totals can only recover a reference partition e_i that is a function
of the descriptor g_i of atom i. The *ceiling* of a partition is the test R2 of the best
direct (supervised, per-atom) fit e_i ~ f_s(i)(g_i) in a model class, trained on the
training frames of the standard split (:func:`toolkit.data.split_frames`), with any
hyperparameter chosen on the validation frames, scored on the test frames. A student
trained on totals is not expected to beat the ceiling of its own model class.

Model classes, each per species:
- ``linear``: ridge regression on standardised descriptors (intercept unpenalised);
- ``quadratic``: the same on the descriptors and all their pairwise products (i <= j);
- ``network``: a small tanh network (default width 16) fitted to the local energies with
  the toolkit's batched L-BFGS and early stopping (:mod:`toolkit.models.training`).

Ridge strengths are relative to the unit diagonal of the standardised Gram matrix and
picked from a fixed grid on validation frames, so the ceiling never looks at test frames.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from ase import Atoms

from toolkit.data import Split, split_frames, validate_frames
from toolkit.descriptors import Descriptors, DescriptorSpec, compute_descriptors
from toolkit.errors import AetkError
from toolkit.metrics import r2, rmse
from toolkit.models.networks import Architecture, EnsembleNetworks, Normalisation, atomic_energies
from toolkit.models.training import TrainedEnsemble, TrainingSettings, batched_lbfgs


class CeilingError(AetkError, ValueError):
    """A ceiling was asked for unknown models or with local energies that do not fit the data."""


MODELS = ("linear", "quadratic", "network")
SMALL_NETWORK = Architecture((16,), "tanh")  # the network ceiling and the default teacher


@dataclass(frozen=True)
class CeilingSettings:
    """Hyperparameters of the direct fits; defaults take seconds for a few hundred frames."""

    ridge_grid: tuple[float, ...] = (1e-10, 1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    network: Architecture = SMALL_NETWORK
    network_seed: int = 0
    network_training: TrainingSettings = TrainingSettings(max_iterations=400, patience=40)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["network"] = self.network.label
        return out


# -- design matrices ---------------------------------------------------------------------------
def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)  # constant columns stay 0 after centring


def quadratic_features(z: np.ndarray) -> np.ndarray:
    """[z, z_i z_j for i <= j] of standardised descriptors z (n, D): (n, D + D(D+1)/2)."""
    i, j = np.triu_indices(z.shape[1])
    return np.concatenate([z, z[:, i] * z[:, j]], axis=1)


def _ridge_path(x: np.ndarray, y: np.ndarray, grid: Sequence[float]) -> list[np.ndarray]:
    """Ridge weights of centred x (n, F), y (n, k) for every strength in ``grid``.

    One eigendecomposition serves all strengths and targets. Solves
    (X^T X / n + alpha I) w = X^T y / n; x is standardised, so alpha is relative.
    """
    n = len(x)
    gram = x.T @ x / n
    eigenvalues, vectors = np.linalg.eigh(gram)
    projected = vectors.T @ (x.T @ y / n)
    eigenvalues = np.clip(eigenvalues, 0.0, None)[:, None]
    return [vectors @ (projected / (eigenvalues + alpha)) for alpha in grid]


def _ridge_fit(kind: str, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
               val_y: np.ndarray, test_x: np.ndarray,
               grid: Sequence[float]) -> tuple[np.ndarray, list[float]]:
    """Linear or quadratic ridge of one species for k targets at once (y: (n, k)).

    Returns test predictions (n_test, k) and each target's strength, chosen on validation.
    """
    mean, std = _standardiser(train_x)

    def design(x: np.ndarray) -> np.ndarray:
        z = (x - mean) / std
        return quadratic_features(z) if kind == "quadratic" else z

    xtr = design(train_x)
    # the products are standardised again, so one relative ridge grid suits both kinds
    fmean, fstd = _standardiser(xtr)
    xtr = (xtr - fmean) / fstd
    ymean = train_y.mean(axis=0)
    weights = _ridge_path(xtr, train_y - ymean, grid)  # [(F, k)] per strength
    xval = (design(val_x) - fmean) / fstd
    errors = np.array([np.mean((xval @ w + ymean - val_y) ** 2, axis=0) for w in weights])
    best = np.argmin(errors, axis=0)  # (k,)
    xte = (design(test_x) - fmean) / fstd
    predicted = np.stack([xte @ weights[b][:, t] + ymean[t] for t, b in enumerate(best)], axis=1)
    return predicted, [float(grid[b]) for b in best]


def ridge_predictions(kind: str, descriptors: Descriptors, targets: np.ndarray,
                      split: Split, grid: Sequence[float]) -> tuple[np.ndarray, list[dict]]:
    """Per-species ridge fits of targets (n_atoms, k) on train frames; test predictions.

    One Gram matrix per species serves all k targets (e.g. several references on the same
    structures). Returns (n_test_atoms, k) predictions and per target {element: strength}.
    """
    where = {part: np.isin(descriptors.frame_index, getattr(split, part))
             for part in ("train", "validation", "test")}
    test_species = descriptors.species_index[where["test"]]
    predicted = np.zeros((len(test_species), targets.shape[1]))
    ridges: list[dict] = [{} for _ in range(targets.shape[1])]
    for s in np.unique(test_species):
        parts = {part: mask & (descriptors.species_index == s) for part, mask in where.items()}
        values = descriptors.values
        fit, strengths = _ridge_fit(kind, values[parts["train"]], targets[parts["train"]],
                                    values[parts["validation"]], targets[parts["validation"]],
                                    values[parts["test"]], grid)
        predicted[test_species == s] = fit
        for t, strength in enumerate(strengths):
            ridges[t][descriptors.spec.elements[int(s)]] = strength
    return predicted, ridges


# -- the per-atom network ------------------------------------------------------------------------
def _atom_loss(networks: EnsembleNetworks, theta: torch.Tensor,
               blocks: list[tuple[torch.Tensor, torch.Tensor] | None]) -> torch.Tensor:
    """Per-member mean over atoms of (target - output)^2, normalised units: (M,)."""
    total = torch.zeros(theta.shape[0], dtype=theta.dtype, device=theta.device)
    count = 0
    for s, block in enumerate(blocks):
        if block is None:
            continue
        x, y = block
        total = total + ((networks.raw_atomic(theta, s, x) - y) ** 2).sum(dim=1)
        count += len(y)
    return total / count


def fit_local_energies(
    descriptors: Descriptors,
    local_energy: np.ndarray,
    split: Split,
    architecture: Architecture = SMALL_NETWORK,
    seeds: Sequence[int] = (0,),
    settings: TrainingSettings | None = None,
) -> TrainedEnsemble:
    """Per-atom supervised fit of ``local_energy`` (eV, one per descriptor row).

    The same per-species networks, normalisation and optimiser as training on totals
    (:func:`toolkit.models.training.train_ensemble`), only the loss is per atom; the result
    exports with :func:`toolkit.models.potential.write_potential` like any trained ensemble.
    """
    from toolkit.models.training import resolve_device

    settings = settings or TrainingSettings()
    device = resolve_device(settings.device)
    torch.set_num_threads(settings.threads)
    local_energy = np.asarray(local_energy, dtype=np.float64)
    n_species, n_desc = len(descriptors.spec.elements), descriptors.values.shape[1]
    train_mask = np.isin(descriptors.frame_index, split.train)
    val_mask = np.isin(descriptors.frame_index, split.validation)

    mean, std = np.zeros((n_species, n_desc)), np.ones((n_species, n_desc))
    shift = np.zeros(n_species)
    trained = []
    for s in range(n_species):
        mask = train_mask & (descriptors.species_index == s)
        if mask.any():
            trained.append(s)
            mean[s], std[s] = _standardiser(descriptors.values[mask])
            shift[s] = local_energy[mask].mean()
    centred = local_energy - shift[descriptors.species_index]
    scale = float(centred[train_mask].std()) or 1e-3
    norm = Normalisation(mean, std, scale, shift)

    def blocks(mask: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        out = []
        for s in range(n_species):
            m = mask & (descriptors.species_index == s)
            out.append((torch.from_numpy(norm.standardise(descriptors.values[m], s)).to(device),
                        torch.from_numpy(centred[m] / scale).to(device)) if m.any() else None)
        return out

    networks = EnsembleNetworks(architecture, n_species, n_desc)
    theta = networks.initial_theta(list(seeds))
    for s in range(n_species):
        if s not in trained:
            theta[:, networks.species_block(s)] = 0.0
    theta = theta.to(device)
    train_blocks, val_blocks = blocks(train_mask), blocks(val_mask)
    start = time.perf_counter()
    best, best_iter, train_loss, val_loss, history = batched_lbfgs(
        lambda t: _atom_loss(networks, t, train_blocks), theta, settings,
        lambda t: _atom_loss(networks, t, val_blocks))
    return TrainedEnsemble(descriptors.spec, architecture, [int(s) for s in seeds], best.cpu(),
                           norm,
                           trained,
                           best_iter.tolist(), train_loss.tolist(), val_loss.tolist(),
                           time.perf_counter() - start, history)


# -- the ceiling ---------------------------------------------------------------------------------
def _scores(reference: np.ndarray, predicted: np.ndarray, species: np.ndarray,
            names: Sequence[str]) -> dict:
    out = {"r2": r2(reference, predicted), "rmse": rmse(reference, predicted),
           "per_species": {}}
    for s in np.unique(species):
        mask = species == s
        out["per_species"][names[int(s)]] = {"r2": r2(reference[mask], predicted[mask]),
                                            "rmse": rmse(reference[mask], predicted[mask])}
    return out


def descriptor_ceiling(
    descriptors: Descriptors,
    local_energy: np.ndarray,
    split: Split,
    models: Sequence[str] = MODELS,
    settings: CeilingSettings | None = None,
) -> dict:
    """Test-frame R2 (overall and per species) of direct fits of ``local_energy`` (eV).

    ``local_energy`` has one entry per descriptor row (atoms of all frames, frame order).
    Returns ``{model: {"r2", "rmse", "per_species": {element: {"r2", "rmse"}}, ...}}``.
    """
    settings = settings or CeilingSettings()
    unknown = set(models) - set(MODELS)
    if unknown:
        raise CeilingError(f"unknown ceiling models {sorted(unknown)}; choose from {MODELS}")
    local_energy = np.asarray(local_energy, dtype=np.float64)
    if local_energy.shape != (len(descriptors.values),):
        raise CeilingError(f"{local_energy.shape[0]} local energies for "
                           f"{len(descriptors.values)} descriptor rows")
    names = descriptors.spec.elements
    where = {part: np.isin(descriptors.frame_index, getattr(split, part))
             for part in ("train", "validation", "test")}
    test_species = descriptors.species_index[where["test"]]
    reference = local_energy[where["test"]]
    results = {}
    for model in models:
        if model == "network":
            ensemble = fit_local_energies(descriptors, local_energy, split, settings.network,
                                          [settings.network_seed], settings.network_training)
            predicted = atomic_energies(ensemble.networks, ensemble.theta, ensemble.normalisation,
                                        descriptors.values[where["test"]], test_species)[0]
            extra = {"architecture": settings.network.label,
                     "iterations": ensemble.iterations[0], "seconds": ensemble.seconds}
        else:
            fit, ridges = ridge_predictions(model, descriptors, local_energy[:, None], split,
                                            settings.ridge_grid)
            predicted, extra = fit[:, 0], {"ridge": ridges[0]}
        results[model] = {**_scores(reference, predicted, test_species, names), **extra}
    return results


def frames_local_energy(frames: Sequence[Atoms]) -> np.ndarray:
    """The reference partition of ``frames``, atoms concatenated in frame order (eV)."""
    return np.concatenate([atoms.arrays["local_energy"] for atoms in frames])


def representability_ceiling(
    frames: Sequence[Atoms],
    spec: DescriptorSpec | None = None,
    split_seed: int = 0,
    models: Sequence[str] = MODELS,
    settings: CeilingSettings | None = None,
    progress: bool = False,
    source: str | None = None,
) -> dict:
    """Ceiling of the ``local_energy`` partition of ``frames`` under descriptor ``spec``.

    Frames need ``energy`` and ``local_energy``; descriptors come from the cache when known.
    Returns the spec, the split and, per model, test R2/RMSE overall and per species.
    """
    spec = spec or DescriptorSpec()
    validate_frames(frames, source, require=("energy", "local_energy"), cutoff=spec.cutoff,
                    species=spec.elements)
    descriptors = compute_descriptors(frames, spec, source=source, progress=progress)
    split = split_frames(len(frames), split_seed)
    return {"spec": spec.to_dict(), "split_seed": split_seed, "n_frames": len(frames),
            "n_test_atoms": int(np.isin(descriptors.frame_index, split.test).sum()),
            "settings": (settings or CeilingSettings()).to_dict(),
            "models": descriptor_ceiling(descriptors, frames_local_energy(frames), split,
                                         models, settings)}


def format_ceiling(result: dict) -> str:
    """One line per model: overall and per-species test R2."""
    lines = []
    for model, score in result["models"].items():
        species = ", ".join(f"{k} {v['r2']:.4f}" for k, v in score["per_species"].items())
        lines.append(f"{model:9s} R2 {score['r2']:.4f} (RMSE {1e3 * score['rmse']:.3f} meV)"
                     f"  per species: {species}")
    return "\n".join(lines)
