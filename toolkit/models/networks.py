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

from dataclasses import dataclass, replace

import numpy as np
import torch

from toolkit.descriptor_spec import DescriptorSpec
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

    def to_dict(self) -> dict:
        return {"hidden": list(self.hidden), "activation": self.activation}

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        return cls(tuple(data["hidden"]), data["activation"])


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
    def species_block(self, species: int) -> slice:
        """Where species ``species``'s parameters sit in a member's flat vector."""
        return slice(species * self.per_species, (species + 1) * self.per_species)

    def output_block(self, species: int) -> slice:
        """The output layer's [weights, bias] of species ``species`` (the last layer)."""
        n_in, _ = self.layers[-1]
        end = (species + 1) * self.per_species
        return slice(end - (n_in + 1), end)

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
        offset = self.species_block(species).start
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


@dataclass(frozen=True, eq=False)
class SpeciesNetworks:
    """One model: a network per element of the spec, and everything needed to evaluate it.

    The one value type for a trained model: training returns it (per ensemble member),
    sweeps store it, :func:`combine` assembles it from several models, the ``mliap nn``
    writer and reader use it, and a potential directory is one of these plus files.
    ``theta`` (P,) is laid out as :class:`EnsembleNetworks` says; per-atom energy (eV) of
    an element-s atom: ``scale * net_s((B - mean_s) / std_s) + shift_s``.
    """

    spec: DescriptorSpec
    architecture: Architecture
    theta: torch.Tensor  # (P,) float64
    normalisation: Normalisation
    trained_elements: tuple[str, ...]

    def __post_init__(self) -> None:
        theta = torch.as_tensor(self.theta, dtype=torch.float64).detach().reshape(-1)
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "trained_elements", tuple(self.trained_elements))
        if theta.numel() != self.layout.n_params:
            raise ArchitectureError(
                f"{theta.numel()} parameters for {self.architecture.label} on "
                f"{self.spec.n_species} species x {self.spec.n_descriptors} descriptors, "
                f"which need {self.layout.n_params}")
        unknown = set(self.trained_elements) - set(self.spec.species)
        if unknown:
            raise ArchitectureError(f"trained elements {sorted(unknown)} are not in the spec "
                                    f"{list(self.spec.species)}")

    @property
    def layout(self) -> EnsembleNetworks:
        # species = elements, then any reference-point types (toolkit/points)
        return EnsembleNetworks(self.architecture, self.spec.n_species,
                                self.spec.n_descriptors)

    def atomic_energies(self, values: np.ndarray, species_index: np.ndarray) -> np.ndarray:
        """Per-atom energies (eV) of descriptors ``values`` (n, D), atoms in input order."""
        return atomic_energies(self.layout, self.theta.reshape(1, -1), self.normalisation,
                               values, species_index)[0]

    def exported_layers(self, species: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(W, b)] of one element with scale and shift folded into the output layer."""
        return exported_layers(self.layout, self.theta, self.normalisation, species)

    def folded(self) -> SpeciesNetworks:
        """The same functions with the energy scale folded into each output layer (scale 1)."""
        theta = self.theta.clone()
        layout = self.layout
        for s in range(self.spec.n_species):
            theta[layout.output_block(s)] *= self.normalisation.scale
        norm = Normalisation(self.normalisation.mean.copy(), self.normalisation.std.copy(),
                             1.0, self.normalisation.shift.copy())
        return replace(self, theta=theta, normalisation=norm)

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), "architecture": self.architecture.to_dict(),
                "theta": self.theta.tolist(), "normalisation": self.normalisation.to_dict(),
                "trained_elements": list(self.trained_elements)}

    @classmethod
    def from_dict(cls, data: dict) -> SpeciesNetworks:
        return cls(DescriptorSpec.from_dict(data["spec"]),
                   Architecture.from_dict(data["architecture"]),
                   torch.tensor(data["theta"], dtype=torch.float64),
                   Normalisation.from_dict(data["normalisation"]),
                   tuple(data["trained_elements"]))


def combine(sources: dict[str, SpeciesNetworks],
            where: dict[str, str] | None = None) -> SpeciesNetworks:
    """One model whose element-e network is the element-e network of ``sources[e]``.

    Exact: each source's energy scale is folded into its own output layer, so every
    element network is the very function its source evaluates. Refuses sources with
    different descriptor specs or architectures (LAMMPS ``nn`` shares one architecture
    across elements) and sources without a trained network for their element. ``where``
    names each source for error messages.
    """
    from toolkit.models.potential import PotentialError

    where = where or {e: f"the {e} source" for e in sources}
    first_element = next(iter(sources))
    first = sources[first_element]
    for element, source in sources.items():
        if source.spec != first.spec:
            raise PotentialError(f"{where[element]} and {where[first_element]} use different "
                                 "descriptor specs; transfer needs one shared spec")
        if source.architecture != first.architecture:
            raise PotentialError(
                f"{where[element]} ({source.architecture.label}) and {where[first_element]} "
                f"({first.architecture.label}) differ in architecture; LAMMPS mliap nn "
                "shares one architecture across elements")
        if element not in source.trained_elements:
            raise PotentialError(f"{where[element]} has no trained {element} network "
                                 f"(trained: {list(source.trained_elements)})")
    spec = first.spec
    unknown = set(sources) - set(spec.elements)
    if unknown:
        raise PotentialError(f"elements {sorted(unknown)} are not in the descriptor spec "
                             f"{list(spec.elements)}")
    layout = first.layout
    theta = torch.zeros(layout.n_params, dtype=torch.float64)
    mean = np.zeros((len(spec.elements), spec.n_descriptors))
    std = np.ones_like(mean)
    shift = np.zeros(len(spec.elements))
    for s, element in enumerate(spec.elements):
        if element not in sources:
            continue
        source = sources[element].folded()
        block = layout.species_block(s)
        theta[block] = source.theta[block]
        mean[s] = source.normalisation.mean[s]
        std[s] = source.normalisation.std[s]
        shift[s] = source.normalisation.shift[s]
    return SpeciesNetworks(spec, first.architecture, theta, Normalisation(mean, std, 1.0, shift),
                           tuple(e for e in spec.elements if e in sources))
