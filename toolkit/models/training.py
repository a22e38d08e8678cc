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

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import torch

from toolkit.descriptor_spec import Descriptors, DescriptorSpec
from toolkit.errors import AetkError, FrameError
from toolkit.models import objective
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
    # -- device and protocol (docs/paper_regime.md); the defaults are the L-BFGS protocol above
    device: str = "cpu"  # "cpu" or "cuda" ("cuda:N"); float64 on both
    optimizer: str = "lbfgs"  # "lbfgs": full batch + early stopping; "adam": mini-batches of
    # frames, a fixed number of epochs, a learning-rate schedule, no early stopping (the
    # parameters after the last epoch are kept), as the paper's training probably was
    epochs: int = 500  # adam only
    batch_size: int = 32  # adam: frames per mini-batch; 0 = all training frames
    learning_rate: float = 1e-3  # adam, normalised units (targets and outputs are O(1))
    lr_schedule: str = "cosine"  # adam: "constant", "cosine" or "exponential" (per step)
    lr_final: float = 0.01  # adam: last learning rate / first (cosine, exponential)
    shuffle_seed: int = 0  # adam: order of the mini-batches, the same for every member, so
    # members differ only by their initialisation seed, as under L-BFGS
    keep: str = "best"  # lbfgs: "best" = the best-validation parameters, stopped by patience
    # (early stopping); "last" = no early stopping: each member runs until converged
    # (gradient_tolerance, no acceptable step) or max_iterations, and its last parameters
    # are kept
    linear_sums: bool = False  # linear activations only (ignored for others): train on one
    # row per frame and species, the mean of its atoms' descriptors, times their count
    # (toolkit/models/objective.py): the same loss and gradient, summed in another order, at
    # 1/50-1/100 of the cost on 108-atom frames. Off by default, so that linear cells trained
    # before it existed rerun to the last digit

    def __post_init__(self) -> None:
        _check_protocol(self)

    def to_dict(self) -> dict:
        return asdict(self)


OPTIMIZERS = ("lbfgs", "adam")
LR_SCHEDULES = ("constant", "cosine", "exponential")


class TrainingSettingsError(AetkError, ValueError):
    pass


def _check_protocol(settings: TrainingSettings) -> None:
    """Refuse impossible device/protocol settings by name (the L-BFGS fields are free)."""
    if settings.optimizer not in OPTIMIZERS:
        raise TrainingSettingsError(f"[training] optimizer {settings.optimizer!r}: choose one "
                                    f"of {OPTIMIZERS}")
    if settings.keep not in ("best", "last"):
        raise TrainingSettingsError(f"[training] keep {settings.keep!r}: 'best' (early "
                                    "stopping on validation loss) or 'last'")
    if settings.lr_schedule not in LR_SCHEDULES:
        raise TrainingSettingsError(f"[training] lr_schedule {settings.lr_schedule!r}: choose "
                                    f"one of {LR_SCHEDULES}")
    if not isinstance(settings.device, str) or not (
            settings.device == "cpu" or re.fullmatch(r"cuda(:\d+)?", settings.device)):
        raise TrainingSettingsError(f"[training] device {settings.device!r}: use 'cpu', 'cuda' "
                                    "or 'cuda:N'")
    if settings.epochs < 1 or settings.batch_size < 0:
        raise TrainingSettingsError("[training] epochs must be >= 1 and batch_size >= 0 "
                                    f"(0 = full batch), got {settings.epochs}, "
                                    f"{settings.batch_size}")
    if settings.weight_decay < 0 or (settings.weight_decay > 0 and settings.optimizer != "lbfgs"):
        raise TrainingSettingsError("[training] weight_decay must be >= 0 and is an L-BFGS "
                                    f"option, got {settings.weight_decay} with "
                                    f"{settings.optimizer}")
    if not isinstance(settings.linear_sums, bool):
        raise TrainingSettingsError("[training] linear_sums must be true or false, got "
                                    f"{settings.linear_sums!r}")
    if not (settings.learning_rate > 0 and 0 < settings.lr_final <= 1):
        raise TrainingSettingsError("[training] learning_rate must be > 0 and lr_final in "
                                    f"(0, 1], got {settings.learning_rate}, {settings.lr_final}")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``; a CUDA request without a GPU is refused in one line."""
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TrainingSettingsError(
            f"device {name!r} asked for, but torch {torch.__version__} on this machine sees no "
            "CUDA GPU (torch.cuda.is_available() is False); use --device cpu ([training] "
            "device = \"cpu\") or run on a GPU machine (scripts/gpu_sweep.sh)")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise TrainingSettingsError(f"device {name!r}: this machine has "
                                    f"{torch.cuda.device_count()} CUDA device(s)")
    return device


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


def lbfgs_direction(grad: torch.Tensor, s_hist: torch.Tensor, y_hist: torch.Tensor,
                    rho: torch.Tensor, gamma: torch.Tensor, slot: int) -> torch.Tensor:
    """-H g of every member's L-BFGS matrix (initial H0 = gamma I), all members at once.

    The compact form of Byrd, Nocedal and Schnabel (Math. Prog. 63, 129 (1994), Eq. 2.6):
    H g = gamma g + S p + gamma Y q with small (h x h) triangular solves, instead of the
    two-loop recursion's 4 h dependent vector operations (which cost more in Python call
    overhead than the arithmetic at small widths). The same matrix in exact arithmetic.
    ``s_hist``/``y_hist`` (M, h, P) hold pairs in a ring whose newest slot is ``slot - 1``;
    slots with ``rho == 0`` are empty or rejected and hold zero vectors.
    """
    m, h, _ = s_hist.shape
    order = torch.tensor([(slot + k) % h for k in range(h)], device=grad.device)  # oldest first
    valid = (rho != 0).index_select(1, order)
    u = torch.bmm(s_hist, grad.unsqueeze(2)).index_select(1, order)  # S^T g, (M, h, 1)
    v = gamma.view(m, 1, 1) * torch.bmm(y_hist, grad.unsqueeze(2)).index_select(1, order)
    sy = torch.bmm(s_hist, y_hist.transpose(1, 2)).index_select(1, order).index_select(2, order)
    yy = torch.bmm(y_hist, y_hist.transpose(1, 2)).index_select(1, order).index_select(2, order)
    # R: s_i . y_j for i <= j (upper triangle); an empty slot gets R_ii = 1 and zero
    # couplings (its vectors are zero), so it drops out of both solves
    r = torch.triu(sy) + torch.diag_embed((~valid).to(sy.dtype))
    d = torch.diag_embed(torch.where(valid, torch.diagonal(sy, dim1=1, dim2=2), 0.0))
    w = torch.linalg.solve_triangular(r, u, upper=True)  # R^-1 S^T g
    p = torch.linalg.solve_triangular(r.transpose(1, 2),
                                      (d + gamma.view(m, 1, 1) * yy) @ w - v, upper=False)
    back = torch.empty_like(order)
    back[order] = torch.arange(h, device=grad.device)
    p, w = p.index_select(1, back), w.index_select(1, back)  # to slot order
    hg = (gamma.unsqueeze(1) * grad + torch.bmm(p.transpose(1, 2), s_hist).squeeze(1)
          - gamma.unsqueeze(1) * torch.bmm(w.transpose(1, 2), y_hist).squeeze(1))
    return -hg


def batched_lbfgs(
    objective: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    settings: TrainingSettings,
    validation: Callable[[torch.Tensor], torch.Tensor],
    progress=None,
    on_iteration: Callable[[int, torch.Tensor], None] | None = None,
    gradient: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Minimise ``objective`` (M,) independently per member; early stopping on ``validation``.

    ``gradient(theta) -> (value (M,), grad (M, P))``: a hand-made value and gradient (see
    :mod:`toolkit.models.objective`); without it autograd differentiates ``objective``.
    Tensors stay on ``theta``'s device. ``on_iteration(iteration, theta)`` is called with the
    current parameters (M, P) before the first iteration (0) and after every iteration
    (stopped members keep theirs).

    Each iteration evaluates value and gradient at the first trial step of the line search
    and reuses them when every moving member accepts that step (the usual case), so an
    iteration costs one gradient evaluation, not a value plus a gradient.

    Returns best-validation parameters, best iteration, train and validation loss there, and a
    short history; with ``settings.keep == "last"`` (no early stopping) the parameters where
    each member stopped (converged, or ``max_iterations``), that iteration and the losses
    there.
    """
    value_and_grad = gradient or (lambda t: _value_and_grad(objective, t))
    m, p = theta.shape
    h = settings.history
    device, dtype = theta.device, theta.dtype
    s_hist = torch.zeros(m, h, p, dtype=dtype, device=device)
    y_hist = torch.zeros(m, h, p, dtype=dtype, device=device)
    rho = torch.zeros(m, h, dtype=dtype, device=device)
    gamma = torch.ones(m, dtype=dtype, device=device)
    slot = 0

    value, grad = value_and_grad(theta)
    with torch.no_grad():
        best_val = validation(theta)
    best_theta, best_iter = theta.clone(), np.zeros(m, dtype=int)
    # patience counts from the last *significant* gain, so slow crawls stop; the best
    # parameters still follow every gain
    last_gain, gain_level = np.zeros(m, dtype=int), best_val.clone()
    best_train = value.clone()
    last_val = best_val.clone()
    stopped_at = np.zeros(m, dtype=int)
    active = torch.ones(m, dtype=torch.bool, device=device)
    history = []
    iteration = 0
    if on_iteration is not None:
        on_iteration(0, theta)
    for iteration in range(1, settings.max_iterations + 1):
        direction = lbfgs_direction(grad, s_hist, y_hist, rho, gamma, slot)
        slope = (grad * direction).sum(1)
        fresh = (rho == 0).all(dim=1)
        bad = (slope >= 0) | ~torch.isfinite(slope)
        if bad.any():  # not a descent direction: restart that member from steepest descent
            direction[bad] = -grad[bad]
            rho[bad] = 0.0
            s_hist[bad] = 0.0
            y_hist[bad] = 0.0
            slope = (grad * direction).sum(1)
            fresh = fresh | bad
        step = torch.ones(m, dtype=dtype, device=device)
        step[fresh] = torch.clamp(1.0 / grad[fresh].abs().sum(1), max=1.0)
        direction[~active] = 0.0

        # backtracking line search; only the members still searching are evaluated (stopped
        # members, and members that already accepted a step, cost nothing), the first trial
        # with its gradient
        pending = active.clone()
        new_theta = theta.clone()
        new_value = value.clone()
        new_grad = grad.clone()
        late = torch.zeros_like(active)  # accepted only after backtracking
        for attempt in range(settings.max_backtracks):
            trial = theta + step.unsqueeze(1) * direction
            members = pending.nonzero().squeeze(1)
            if attempt == 0:
                part_value, part_grad = value_and_grad(trial.index_select(0, members))
                new_grad[members] = part_grad
            else:
                with torch.no_grad():
                    part_value = objective(trial.index_select(0, members))
            trial_value = torch.full_like(value, float("inf"))
            trial_value[members] = part_value
            ok = pending & torch.isfinite(trial_value) & (
                trial_value <= value + settings.armijo * step * slope)
            if attempt > 0:
                late |= ok
            new_theta[ok] = trial[ok]
            new_value[ok] = trial_value[ok]
            pending &= ~ok
            if not pending.any():
                break
            step[pending] *= 0.5
        stalled = pending  # no acceptable step: this member has converged as far as it can
        moved = active & ~stalled
        # members that accepted the first trial sit where their gradient was evaluated;
        # members that accepted a shorter step need theirs
        if late.any():
            members = late.nonzero().squeeze(1)
            new_grad[members] = value_and_grad(new_theta.index_select(0, members))[1]

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

        members = active.nonzero().squeeze(1)
        val = last_val.clone()  # stopped members keep their last validation loss
        with torch.no_grad():
            val[members] = validation(theta.index_select(0, members))
        last_val = val
        improved = active & (val < best_val)
        best_val = torch.where(improved, val, best_val)
        best_train = torch.where(improved, value, best_train)
        best_theta[improved] = theta[improved]
        best_iter[improved.cpu().numpy()] = iteration
        significant = active & (val < gain_level * (1.0 - settings.min_improvement))
        gain_level = torch.where(significant, val, gain_level)
        last_gain[significant.cpu().numpy()] = iteration
        patience_out = torch.from_numpy(iteration - last_gain > settings.patience).to(device)
        if settings.keep == "last":  # no early stopping: run to convergence or the cap
            patience_out = torch.zeros_like(active)
        converged = grad.abs().amax(dim=1) < settings.gradient_tolerance
        was_active = active.clone()
        active &= ~(stalled | patience_out | converged)
        stopped_at[(was_active & ~active).cpu().numpy()] = iteration

        if iteration % 10 == 0 or not active.any() or iteration == settings.max_iterations:
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
    if settings.keep == "last":  # the parameters where each member stopped
        stopped_at[stopped_at == 0] = iteration
        return theta, stopped_at, value.cpu().numpy(), last_val.cpu().numpy(), history
    return (best_theta, best_iter, best_train.cpu().numpy(), best_val.cpu().numpy(),
            history)


# -- the paper-style protocol -------------------------------------------------------------------
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def learning_rate(settings: TrainingSettings, step: int, total_steps: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based) of ``total_steps``."""
    if settings.lr_schedule == "constant" or total_steps <= 1:
        return settings.learning_rate
    done = step / (total_steps - 1)
    if settings.lr_schedule == "cosine":
        return settings.learning_rate * (settings.lr_final + (1.0 - settings.lr_final)
                                         * 0.5 * (1.0 + math.cos(math.pi * done)))
    return settings.learning_rate * settings.lr_final ** done  # exponential


def batched_adam(
    networks: EnsembleNetworks,
    theta: torch.Tensor,
    train: objective.PackedFrames,
    settings: TrainingSettings,
    validation: Callable[[torch.Tensor], torch.Tensor],
    progress=None,
    on_iteration: Callable[[int, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Adam on mini-batches of training frames for ``settings.epochs`` epochs, no stopping.

    Every epoch visits the training frames once in a fresh order drawn from
    ``settings.shuffle_seed`` (the same order for all members), ``batch_size`` frames per
    step; the loss of a step is the mean over its frames. Adam's moments are elementwise,
    so each member has its own optimiser state and its own trajectory.
    ``on_iteration(epoch, theta)`` after every epoch (and 0 before the first).

    Returns the parameters after the last epoch, the epoch count, and the full training and
    validation losses there (same shapes as :func:`batched_lbfgs`).
    """
    m = theta.shape[0]
    n = train.n_frames
    batch = settings.batch_size or n
    total_steps = settings.epochs * math.ceil(n / batch)
    first = torch.zeros_like(theta)
    second = torch.zeros_like(theta)
    beta1, beta2 = ADAM_BETAS
    rng = np.random.default_rng(settings.shuffle_seed)
    history: list[dict] = []
    step = 0
    if on_iteration is not None:
        on_iteration(0, theta)
    for epoch in range(1, settings.epochs + 1):
        frames = train.reordered(rng.permutation(n))
        epoch_loss = torch.zeros(m, dtype=theta.dtype, device=theta.device)
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            value, grad = objective.value_and_grad(networks, theta, frames, start, stop)
            epoch_loss += value * ((stop - start) / n)
            rate = learning_rate(settings, step, total_steps)
            step += 1
            first.mul_(beta1).add_(grad, alpha=1.0 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            denominator = (second / (1.0 - beta2 ** step)).sqrt_().add_(ADAM_EPS)
            theta = theta - (rate / (1.0 - beta1 ** step)) * first / denominator
        if epoch % 10 == 0 or epoch == settings.epochs:
            with torch.no_grad():
                val = validation(theta)
            history.append({"iteration": epoch, "train": epoch_loss.tolist(),
                            "validation": val.tolist(), "learning_rate": rate})
        if on_iteration is not None:
            on_iteration(epoch, theta)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(train=f"{float(epoch_loss.min()):.3g}", lr=f"{rate:.2g}")
    with torch.no_grad():
        train_loss = objective.value(networks, theta, train)
        val_loss = validation(theta)
    return (theta, np.full(m, settings.epochs), train_loss.cpu().numpy(),
            val_loss.cpu().numpy(), history)


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

    ``settings.optimizer``: "lbfgs" (default; full batch, early stopping on the validation
    frames, the best-validation parameters are kept) or "adam" (mini-batches, fixed epochs,
    the last parameters are kept). ``settings.device``: "cpu" or "cuda"; the returned
    parameters are on the CPU either way.

    ``monitor``: called every ``monitor.every`` iterations (epochs for adam; and at 0) with
    the iteration and the ensemble as it stands then (current, not best, parameters), e.g. to
    record local-energy scores along training.

    ``energies`` (eV) and ``train``/``validation`` index the frames of ``descriptors``.
    ``frame_weights`` (one per frame of ``descriptors``, default all 1) weight each frame's
    term of the training loss, e.g. to add invariant-point anchors as a soft constraint.
    Species absent from the training frames get all-zero networks (they output the shift, 0).
    """
    settings = settings or TrainingSettings()
    device = resolve_device(settings.device)
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
    train_packed = objective.PackedFrames.pack(train_set.blocks, train_set.target,
                                               train_set.n_atoms, device, train_set.weight)
    val_packed = objective.PackedFrames.pack(val_set.blocks, val_set.target, val_set.n_atoms,
                                             device)
    if settings.linear_sums and architecture.activation == "linear":
        train_packed, val_packed = train_packed.summed(), val_packed.summed()

    networks = EnsembleNetworks(architecture, descriptors.spec.n_species,
                                descriptors.values.shape[1])
    theta = networks.initial_theta(list(seeds))  # on the CPU: the same start on every device
    trained = [s for s, b in enumerate(train_set.blocks) if b is not None]
    for s in range(networks.n_species):
        if s not in trained:
            theta[:, networks.species_block(s)] = 0.0
    theta = theta.to(device)

    start = time.perf_counter()
    adam = settings.optimizer == "adam"
    bar = progress_bar(total=settings.epochs if adam else settings.max_iterations,
                       desc=f"fit {architecture.label} x{len(seeds)}",
                       unit="epoch" if adam else "it", enabled=progress, leave=False)
    on_iteration = None
    if monitor is not None:
        def on_iteration(iteration: int, current: torch.Tensor) -> None:
            if iteration % monitor.every == 0:
                monitor(iteration, TrainedEnsemble(
                    descriptors.spec, architecture, [int(s) for s in seeds],
                    current.detach().cpu().clone(), norm, trained,
                    [iteration] * len(seeds), [], [], 0.0))

    def validation_loss(t: torch.Tensor) -> torch.Tensor:
        return objective.value(networks, t, val_packed)

    decay = settings.weight_decay
    p = theta.shape[1]

    def train_value(t: torch.Tensor) -> torch.Tensor:
        value = objective.value(networks, t, train_packed)
        return value + decay * (t * t).mean(dim=1) if decay > 0.0 else value

    def train_value_and_grad(t: torch.Tensor):
        value, grad = objective.value_and_grad(networks, t, train_packed)
        if decay > 0.0:
            value, grad = value + decay * (t * t).mean(dim=1), grad + (2.0 * decay / p) * t
        return value, grad

    with bar:
        if adam:
            best, best_iter, train_loss, val_loss, history = batched_adam(
                networks, theta, train_packed, settings, validation_loss, bar, on_iteration)
        else:
            best, best_iter, train_loss, val_loss, history = batched_lbfgs(
                train_value, theta, settings, validation_loss, bar, on_iteration,
                gradient=train_value_and_grad)
    return TrainedEnsemble(
        spec=descriptors.spec,
        architecture=architecture,
        seeds=[int(s) for s in seeds],
        theta=best.cpu(),
        normalisation=norm,
        trained_species=trained,
        iterations=best_iter.tolist(),
        train_loss=train_loss.tolist(),
        validation_loss=val_loss.tolist(),
        seconds=time.perf_counter() - start,
        history=history,
    )
