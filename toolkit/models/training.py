"""Training on total energies only (the paper's Eq. 6), batched over ensemble members.

Targets are normalised: per-species shifts from a least-squares fit of totals to
composition, and one energy scale, std over frames of (E - shifts) / sqrt(N). That is the
spread an atomic energy would have if atoms were independent (a few meV here), so network
outputs are O(1). Raw eV totals fluctuate by only ~1 meV/atom around a large mean, which
plain gradient descent does not fit (measured); normalised targets with full-batch
L-BFGS do, in seconds for small networks.

The optimiser is a batched L-BFGS: each member has its own curvature history, its own
backtracking (Armijo) step and its own early stopping on validation loss, so training M
members together gives the same members as training each alone, only faster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm  # the type of a progress bar

from toolkit.descriptor_spec import Descriptors, DescriptorSpec
from toolkit.errors import FrameError
from toolkit.models.networks import (
    Architecture,
    EnsembleNetworks,
    Normalisation,
    SpeciesBlock,
    SpeciesNetworks,
)
from toolkit.progress import progress as progress_bar


@dataclass(frozen=True)
class TrainingSettings:
    max_iterations: int = 1000  # L-BFGS iterations (each one full-batch gradient)
    patience: int = 50  # stop a member after this many iterations without a significant
    min_improvement: float = 1e-3  # ... validation gain: a relative drop of at least this
    threads: int = 1  # torch threads; 1 is deterministic and avoids OpenMP oversubscription
    # (measured: 2 threads on 2 busy cores ran 2-7x slower); scale out with mpirun instead
    history: int = 20  # L-BFGS curvature pairs
    gradient_tolerance: float = 1e-9  # stop a member when max |grad| falls below this
    armijo: float = 1e-4
    max_backtracks: int = 30
    # L2 penalty weight_decay x mean(theta^2) added to the training loss (not to validation);
    # a remedy to test against drift along gauge directions (docs/identifiability.md)
    weight_decay: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FrameSet:
    """Training-ready frames: standardised per-species atom blocks and normalised targets."""

    blocks: list[SpeciesBlock | None]
    target: torch.Tensor  # (F,) normalised total energy
    n_atoms: torch.Tensor  # (F,)
    weight: torch.Tensor | None = None  # (F,) loss weight per frame; None: all 1

    @property
    def n_frames(self) -> int:
        return int(self.target.shape[0])


@dataclass
class TrainedEnsemble:
    """M members trained together; :meth:`member` gives one as a :class:`SpeciesNetworks`."""

    spec: DescriptorSpec
    architecture: Architecture
    seeds: list[int]
    theta: torch.Tensor  # (M, P), the best-validation parameters
    normalisation: Normalisation
    trained_species: list[int]
    iterations: list[int]  # per member: iteration of the best validation loss
    train_loss: list[float]  # per member, normalised units, at the best iteration
    validation_loss: list[float]
    seconds: float
    history: list[dict] = field(default_factory=list)

    @property
    def networks(self) -> EnsembleNetworks:
        return EnsembleNetworks(self.architecture, self.normalisation.mean.shape[0],
                                self.normalisation.mean.shape[1])

    @property
    def trained_elements(self) -> tuple[str, ...]:
        return tuple(self.spec.species[s] for s in self.trained_species)

    def member(self, index: int) -> SpeciesNetworks:
        return SpeciesNetworks(self.spec, self.architecture, self.theta[index],
                               self.normalisation, self.trained_elements)

    def to_dict(self) -> dict:
        """Everything but the history, JSON/torch-ready (``theta`` stays a tensor)."""
        return {"spec": self.spec.to_dict(), "architecture": self.architecture.to_dict(),
                "seeds": list(self.seeds), "theta": self.theta,
                "normalisation": self.normalisation.to_dict(),
                "trained_species": list(self.trained_species),
                "iterations": list(self.iterations), "train_loss": list(self.train_loss),
                "validation_loss": list(self.validation_loss), "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: dict) -> TrainedEnsemble:
        return cls(DescriptorSpec.from_dict(data["spec"]),
                   Architecture.from_dict(data["architecture"]), list(data["seeds"]),
                   torch.as_tensor(data["theta"], dtype=torch.float64),
                   Normalisation.from_dict(data["normalisation"]),
                   list(data["trained_species"]), list(data["iterations"]),
                   list(data["train_loss"]), list(data["validation_loss"]),
                   float(data["seconds"]))


class Monitor(Protocol):
    """Something that looks at an ensemble during training (see :func:`train_ensemble`)."""

    every: int  # iterations between calls

    def __call__(self, iteration: int, ensemble: TrainedEnsemble) -> None: ...


# -- normalisation and data -------------------------------------------------------------------
def composition_counts(descriptors: Descriptors, n_species: int) -> np.ndarray:
    """(F, S): atoms of each species in each frame."""
    counts = np.zeros((descriptors.n_frames, n_species))
    np.add.at(counts, (descriptors.frame_index, descriptors.species_index), 1.0)
    return counts


def fit_normalisation(descriptors: Descriptors, energies: np.ndarray) -> Normalisation:
    n_species, n_desc = descriptors.spec.n_species, descriptors.values.shape[1]
    mean = np.zeros((n_species, n_desc))
    std = np.ones((n_species, n_desc))
    for s in range(n_species):
        block = descriptors.values[descriptors.species_index == s]
        if len(block):
            mean[s] = block.mean(axis=0)
            spread = block.std(axis=0)
            std[s] = np.where(spread > 1e-12, spread, 1.0)
    counts = composition_counts(descriptors, n_species)
    shift, *_ = np.linalg.lstsq(counts, energies, rcond=None)  # min-norm: absent species -> 0
    residual = (energies - counts @ shift) / np.sqrt(counts.sum(axis=1))
    scale = float(residual.std())
    if not np.isfinite(scale) or scale < 1e-6:
        scale = 1e-3  # frames with (nearly) identical energies: any meV-sized unit works
    return Normalisation(mean, std, scale, shift)


def frame_set(descriptors: Descriptors, energies: np.ndarray, norm: Normalisation,
              weights: np.ndarray | None = None) -> FrameSet:
    n_species = norm.mean.shape[0]
    blocks: list[SpeciesBlock | None] = []
    for s in range(n_species):
        mask = descriptors.species_index == s
        if not mask.any():
            blocks.append(None)
            continue
        blocks.append(SpeciesBlock(
            x=torch.from_numpy(norm.standardise(descriptors.values[mask], s)),
            frame=torch.from_numpy(descriptors.frame_index[mask]),
        ))
    counts = composition_counts(descriptors, n_species)
    target = (energies - counts @ norm.shift) / norm.scale
    weight = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    return FrameSet(blocks, torch.from_numpy(target), torch.from_numpy(counts.sum(axis=1)),
                    weight)


def loss(networks: EnsembleNetworks, theta: torch.Tensor, frames: FrameSet) -> torch.Tensor:
    """Per-member mean over frames of (E_ref - sum_i e_i)^2 / N, normalised units: (M,);
    each frame times its weight when the frame set has weights."""
    totals = torch.zeros(theta.shape[0], frames.n_frames, dtype=theta.dtype)
    for s, block in enumerate(frames.blocks):
        if block is not None:
            totals.index_add_(1, block.frame, networks.raw_atomic(theta, s, block.x))
    per_frame = (totals - frames.target) ** 2 / frames.n_atoms
    if frames.weight is not None:
        per_frame = per_frame * frames.weight
    return per_frame.mean(dim=1)


# -- the optimiser ------------------------------------------------------------------------------
def _value_and_grad(objective: Callable, theta: torch.Tensor):
    theta = theta.detach().requires_grad_(True)
    value = objective(theta)
    (grad,) = torch.autograd.grad(value.sum(), theta)
    return value.detach(), grad.detach()


def batched_lbfgs(
    objective: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    settings: TrainingSettings,
    validation: Callable[[torch.Tensor], torch.Tensor],
    progress: tqdm | None = None,
    on_iteration: Callable[[int, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Minimise ``objective`` (M,) independently per member; early stopping on ``validation``.

    ``on_iteration(iteration, theta)`` is called with the current parameters (M, P) before the
    first iteration (0) and after every iteration (stopped members keep theirs).

    Returns best-validation parameters, best iteration, train and validation loss there, and a
    short history.
    """
    m, p = theta.shape
    h = settings.history
    s_hist = torch.zeros(m, h, p, dtype=theta.dtype)
    y_hist = torch.zeros(m, h, p, dtype=theta.dtype)
    rho = torch.zeros(m, h, dtype=theta.dtype)
    gamma = torch.ones(m, dtype=theta.dtype)
    slot = 0

    value, grad = _value_and_grad(objective, theta)
    with torch.no_grad():
        best_val = validation(theta)
    best_theta, best_iter = theta.clone(), np.zeros(m, dtype=int)
    # patience counts from the last *significant* gain, so slow crawls stop; the best
    # parameters still follow every gain
    last_gain, gain_level = np.zeros(m, dtype=int), best_val.clone()
    best_train = value.clone()
    active = torch.ones(m, dtype=torch.bool)
    history = []
    iteration = 0
    if on_iteration is not None:
        on_iteration(0, theta)
    for iteration in range(1, settings.max_iterations + 1):
        # two-loop recursion, newest pair first; rho = 0 marks empty/rejected slots
        q = grad.clone()
        order = [(slot - 1 - k) % h for k in range(h)]
        alphas = {}
        for i in order:
            alphas[i] = rho[:, i] * (s_hist[:, i] * q).sum(1)
            q -= alphas[i].unsqueeze(1) * y_hist[:, i]
        r = gamma.unsqueeze(1) * q
        for i in reversed(order):
            beta = rho[:, i] * (y_hist[:, i] * r).sum(1)
            r += s_hist[:, i] * (alphas[i] - beta).unsqueeze(1)
        direction = -r
        slope = (grad * direction).sum(1)
        fresh = (rho == 0).all(dim=1)
        bad = (slope >= 0) | ~torch.isfinite(slope)
        if bad.any():  # not a descent direction: restart that member from steepest descent
            direction[bad] = -grad[bad]
            rho[bad] = 0.0
            slope = (grad * direction).sum(1)
            fresh = fresh | bad
        step = torch.ones(m, dtype=theta.dtype)
        step[fresh] = torch.clamp(1.0 / grad[fresh].abs().sum(1), max=1.0)
        direction[~active] = 0.0

        # backtracking line search, all pending members evaluated together
        pending = active.clone()
        new_theta = theta.clone()
        new_value = value.clone()
        with torch.no_grad():
            for _ in range(settings.max_backtracks):
                trial = theta + step.unsqueeze(1) * direction
                trial_value = objective(trial)
                ok = pending & torch.isfinite(trial_value) & (
                    trial_value <= value + settings.armijo * step * slope)
                new_theta[ok] = trial[ok]
                new_value[ok] = trial_value[ok]
                pending &= ~ok
                if not pending.any():
                    break
                step[pending] *= 0.5
        stalled = pending  # no acceptable step: this member has converged as far as it can
        moved = active & ~stalled
        _, new_grad = _value_and_grad(objective, new_theta)

        s_vec = new_theta - theta
        y_vec = new_grad - grad
        sy = (s_vec * y_vec).sum(1)
        yy = (y_vec * y_vec).sum(1)
        accept = moved & (sy > 1e-12 * torch.sqrt((s_vec * s_vec).sum(1) * yy))
        s_hist[:, slot] = torch.where(accept.unsqueeze(1), s_vec, 0.0)
        y_hist[:, slot] = torch.where(accept.unsqueeze(1), y_vec, 0.0)
        rho[:, slot] = torch.where(accept, 1.0 / torch.where(accept, sy, 1.0), 0.0)
        gamma = torch.where(accept, sy / torch.where(accept, yy, 1.0), gamma)
        slot = (slot + 1) % h

        theta = torch.where(moved.unsqueeze(1), new_theta, theta)
        grad = torch.where(moved.unsqueeze(1), new_grad, grad)
        value = torch.where(moved, new_value, value)

        with torch.no_grad():
            val = validation(theta)
        improved = active & (val < best_val)
        best_val = torch.where(improved, val, best_val)
        best_train = torch.where(improved, value, best_train)
        best_theta[improved] = theta[improved]
        best_iter[improved.numpy()] = iteration
        significant = active & (val < gain_level * (1.0 - settings.min_improvement))
        gain_level = torch.where(significant, val, gain_level)
        last_gain[significant.numpy()] = iteration
        patience_out = torch.from_numpy(iteration - last_gain > settings.patience)
        converged = grad.abs().amax(dim=1) < settings.gradient_tolerance
        active &= ~(stalled | patience_out | converged)

        if iteration % 10 == 0 or not active.any():
            history.append({"iteration": iteration, "train": value.tolist(),
                            "validation": val.tolist()})
        if on_iteration is not None:
            on_iteration(iteration, theta)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(train=f"{float(value.min()):.3g}",
                                 val=f"{float(best_val.min()):.3g}", active=int(active.sum()))
        if not active.any():
            break
    return best_theta, best_iter, best_train.numpy(), best_val.numpy(), history


# -- the public entry point ---------------------------------------------------------------------
def train_ensemble(
    architecture: Architecture,
    descriptors: Descriptors,
    energies: np.ndarray,
    train: Sequence[int],
    validation: Sequence[int],
    seeds: Sequence[int],
    settings: TrainingSettings | None = None,
    progress: bool = True,
    normalisation: Normalisation | None = None,
    monitor: Monitor | None = None,
    frame_weights: np.ndarray | None = None,
) -> TrainedEnsemble:
    """Train one member per seed on the total energies of the ``train`` frames.

    ``monitor``: called every ``monitor.every`` iterations (and at 0 and the last) with the
    iteration and the ensemble as it stands then (current, not best, parameters), e.g. to
    record local-energy scores along training.

    ``energies`` (eV) and ``train``/``validation`` index the frames of ``descriptors``.
    ``frame_weights`` (one per frame of ``descriptors``, default all 1) weight each frame's
    term of the training loss, e.g. to add invariant-point anchors as a soft constraint.
    Species absent from the training frames get all-zero networks (they output the shift, 0).
    """
    settings = settings or TrainingSettings()
    # set every time: creating a LAMMPS instance resets the shared OpenMP runtime to 1 thread
    torch.set_num_threads(settings.threads)
    energies = np.asarray(energies, dtype=np.float64)
    if not np.all(np.isfinite(energies)):
        raise FrameError("training energies contain NaN/inf; check the data file's energy= values")
    train_d = descriptors.select_frames(train)
    val_d = descriptors.select_frames(validation)
    norm = normalisation or fit_normalisation(train_d, energies[list(train)])
    train_set = frame_set(train_d, energies[list(train)], norm,
                          None if frame_weights is None else
                          np.asarray(frame_weights, dtype=np.float64)[list(train)])
    val_set = frame_set(val_d, energies[list(validation)], norm)

    networks = EnsembleNetworks(architecture, descriptors.spec.n_species,
                                descriptors.values.shape[1])
    theta = networks.initial_theta(list(seeds))
    trained = [s for s, b in enumerate(train_set.blocks) if b is not None]
    for s in range(networks.n_species):
        if s not in trained:
            theta[:, networks.species_block(s)] = 0.0

    start = time.perf_counter()
    bar = progress_bar(total=settings.max_iterations, desc=f"fit {architecture.label} "
                       f"x{len(seeds)}", unit="it", enabled=progress, leave=False)
    on_iteration = None
    if monitor is not None:
        def on_iteration(iteration: int, current: torch.Tensor) -> None:
            if iteration % monitor.every == 0:
                monitor(iteration, TrainedEnsemble(
                    descriptors.spec, architecture, [int(s) for s in seeds], current.clone(),
                    norm, trained, [iteration] * len(seeds), [], [], 0.0))
    def objective(t: torch.Tensor) -> torch.Tensor:
        value = loss(networks, t, train_set)
        if settings.weight_decay > 0.0:
            value = value + settings.weight_decay * (t * t).mean(dim=1)
        return value

    with bar:
        best, best_iter, train_loss, val_loss, history = batched_lbfgs(
            objective, theta, settings, lambda t: loss(networks, t, val_set), bar,
            on_iteration)
    return TrainedEnsemble(
        spec=descriptors.spec,
        architecture=architecture,
        seeds=[int(s) for s in seeds],
        theta=best,
        normalisation=norm,
        trained_species=trained,
        iterations=best_iter.tolist(),
        train_loss=train_loss.tolist(),
        validation_loss=val_loss.tolist(),
        seconds=time.perf_counter() - start,
        history=history,
    )
