"""Per-species networks E = sum_i f_{s(i)}(g_i), as batched ensembles of independent members.

One network per species, all with the same architecture (LAMMPS ``mliap model nn`` shares
one architecture across elements). An ensemble holds M members (seeds, or one cell of a
sweep) side by side: every weight has a leading member axis, so M models train in one
batched matmul while staying mathematically independent.

Parameters live in one flat float64 tensor ``theta`` of shape (M, P), laid out species by
species and, within a species, layer by layer as [weights (n_out, n_in), bias (n_out)].
Per-atom energy of member m, species s:  e = scale * net_s((g - mean_s) / std_s) + shift_s,
where (mean, std, scale, shift) are fixed from the training data (see training.py). The
export folds scale and shift into the output layer, so LAMMPS evaluates the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from toolkit.errors import AetkError

# Exactly the activations LAMMPS `mliap model nn` evaluates; any other name would silently
# become linear there, so it is refused here.
ACTIVATIONS = ("linear", "tanh", "sigmoid", "relu")



class ArchitectureError(AetkError, ValueError):
    pass


@dataclass(frozen=True)
class Architecture:
    """Hidden layer widths and their activation; the output layer is always linear, width 1."""

    hidden: tuple[int, ...]
    activation: str = "tanh"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.activation not in ACTIVATIONS:
            raise ArchitectureError(
                f"activation {self.activation!r} is not evaluated by LAMMPS mliap model nn "
                f"(it would silently become linear there); choose one of {ACTIVATIONS}"
            )
        if any(h < 1 for h in self.hidden):
            raise ArchitectureError(f"hidden widths must be >= 1, got {self.hidden}")

    def layer_sizes(self, n_descriptors: int) -> list[tuple[int, int]]:
        """(n_in, n_out) of every layer, output layer last."""
        widths = [n_descriptors, *self.hidden, 1]
        return list(zip(widths[:-1], widths[1:], strict=True))

    def params_per_species(self, n_descriptors: int) -> int:
        return sum(n_out * (n_in + 1) for n_in, n_out in self.layer_sizes(n_descriptors))

    @property
    def label(self) -> str:
        return f"{self.activation}-" + ("x".join(map(str, self.hidden)) or "0")


def _activation(name: str):
    return {
        "linear": lambda x: x,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "relu": torch.relu,
    }[name]


@dataclass
class SpeciesBlock:
    """The training atoms of one species, standardised once: x (n_atoms, D), frame (n_atoms,)."""

    x: torch.Tensor
    frame: torch.Tensor


class EnsembleNetworks:
    """Functional per-species networks for M members; ``theta`` is passed in, not stored."""

    def __init__(self, architecture: Architecture, n_species: int, n_descriptors: int):
        self.architecture = architecture
        self.n_species = n_species
        self.n_descriptors = n_descriptors
        self.layers = architecture.layer_sizes(n_descriptors)
        self.per_species = architecture.params_per_species(n_descriptors)
        self.n_params = n_species * self.per_species
        self._act = _activation(architecture.activation)

    # -- parameters ------------------------------------------------------------------------
    def initial_theta(self, seeds: list[int]) -> torch.Tensor:
        """Glorot-uniform weights, zero biases; member m depends only on seeds[m]."""
        rows = []
        for seed in seeds:
            generator = torch.Generator().manual_seed(int(seed))
            parts = []
            for _ in range(self.n_species):
                for n_in, n_out in self.layers:
                    bound = float(np.sqrt(6.0 / (n_in + n_out)))
                    w = (torch.rand(n_out * n_in, generator=generator, dtype=torch.float64)
                         * 2.0 - 1.0) * bound
                    parts += [w, torch.zeros(n_out, dtype=torch.float64)]
            rows.append(torch.cat(parts))
        return torch.stack(rows)

    def unpack(self, theta: torch.Tensor, species: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(W (M, n_out, n_in), b (M, n_out)) per layer] of one species."""
        m = theta.shape[0]
        offset = species * self.per_species
        layers = []
        for n_in, n_out in self.layers:
            w = theta[:, offset : offset + n_out * n_in].reshape(m, n_out, n_in)
            offset += n_out * n_in
            b = theta[:, offset : offset + n_out]
            offset += n_out
            layers.append((w, b))
        return layers

    # -- evaluation ------------------------------------------------------------------------
    def raw_atomic(self, theta: torch.Tensor, species: int, x: torch.Tensor) -> torch.Tensor:
        """Network output (before scale/shift) of standardised inputs x (n, D): (M, n)."""
        h = x.unsqueeze(0).expand(theta.shape[0], -1, -1)
        layers = self.unpack(theta, species)
        for index, (w, b) in enumerate(layers):
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if index < len(layers) - 1:
                h = self._act(h)
        return h.squeeze(-1)


@dataclass
class Normalisation:
    """Fixed affine maps around the networks, from training data (units in comments)."""

    mean: np.ndarray  # (S, D) descriptor means
    std: np.ndarray  # (S, D) descriptor stds (1 where a component is constant)
    scale: float  # eV per network output unit
    shift: np.ndarray  # (S,) eV, per-species energy offset

    def standardise(self, values: np.ndarray, species: int) -> np.ndarray:
        return (values - self.mean[species]) / self.std[species]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "scale": self.scale,
                "shift": self.shift.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Normalisation:
        return cls(np.asarray(data["mean"], dtype=np.float64),
                   np.asarray(data["std"], dtype=np.float64), float(data["scale"]),
                   np.asarray(data["shift"], dtype=np.float64))


def atomic_energies(
    networks: EnsembleNetworks,
    theta: torch.Tensor,
    normalisation: Normalisation,
    values: np.ndarray,
    species_index: np.ndarray,
) -> np.ndarray:
    """Per-atom energies (eV) of every member: (M, n_atoms), atoms in input order."""
    out = np.zeros((theta.shape[0], len(values)))
    with torch.no_grad():
        for s in range(networks.n_species):
            mask = species_index == s
            if not mask.any():
                continue
            x = torch.from_numpy(normalisation.standardise(values[mask], s))
            raw = networks.raw_atomic(theta, s, x).numpy()
            out[:, mask] = normalisation.scale * raw + normalisation.shift[s]
    return out


def exported_layers(
    networks: EnsembleNetworks, theta_member: torch.Tensor, normalisation: Normalisation,
    species: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Layers of one member and species with scale/shift folded into the output layer."""
    layers = [(w[0].detach().numpy().copy(), b[0].detach().numpy().copy())
              for w, b in networks.unpack(theta_member.reshape(1, -1), species)]
    w_out, b_out = layers[-1]
    layers[-1] = (w_out * normalisation.scale,
                  b_out * normalisation.scale + normalisation.shift[species])
    return layers
