"""FitSNAP PyTorch networks as toolkit potentials with a native LAMMPS ``mliap model nn``.

Layout, from the fitsnap3 3.1.0.4 source (paths relative to ``fitsnap3lib/``):
lib/neural_networks/pytorch.py ``create_torch_network`` builds, for ``layer_sizes =
num_desc h1 ... hk 1``, ``Sequential(Linear(D, D), Linear(D, h1), Softplus, ...,
Linear(hk, 1))``: module 0 standardises (solvers/pytorch.py sets it to diag(1/std) with
bias mean/std and then trains it like the rest), and Softplus is hard-wired. ``FitTorch``
holds ``network_architecture{t}``: one shared by all types (``multi_element_option = 1``,
the default) or one per type t+1 (``= 2``). The solver saves ``{'epoch', 'model_state_dict',
'optimizer_state_dict', 'loss'}`` to ``save_state_output`` (default ``FitTorchModel``).
Outputs are per-atom energies in eV: FitSNAP sums them per frame and compares sum / N with
(E - E_reference) / N, where its file scrapers (JSON, XYZ, VASP) have added ``[ESHIFT]`` of
every atom to E; its ASE scraper adds nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from toolkit.data import file_hash
from toolkit.interop.fitsnap import FitsnapError, FitsnapInput, read_fitsnap_input
from toolkit.models.networks import (
    ACTIVATIONS,
    Architecture,
    Normalisation,
    SpeciesNetworks,
)

FITSNAP_ACTIVATION = "softplus"  # hard-wired in create_torch_network
FILE_SCRAPERS = ("JSON", "XYZ", "VASP")  # the scrapers that add [ESHIFT] to energies

_KEY = re.compile(r"^network_architecture(\d+)\.(\d+)\.(weight|bias)$")


def load_fitsnap_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The network state dict of a FitSNAP checkpoint (``save_state_output``) or of a bare
    state dict file, plus what else the checkpoint records (epoch, loss)."""
    path = Path(path)
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FitsnapError(f"{path}: no such file") from None
    except Exception as exc:  # a pickled module (FitSNAP's output_file) or not torch at all
        raise FitsnapError(
            f"{path}: not a FitSNAP checkpoint or state dict ({type(exc).__name__}). Give the "
            "file named by [PYTORCH] save_state_output (default FitTorchModel); FitSNAP's "
            "output_file (FitTorch_Pytorch.pt) is a pickled mliappy module, not read here"
        ) from None
    if isinstance(stored, dict) and "model_state_dict" in stored:
        extra = {k: (float(v.detach()) if isinstance(v, torch.Tensor) else
                     float(v) if isinstance(v, (int, float)) else str(v))
                 for k, v in stored.items() if k in ("epoch", "loss")}
        return dict(stored["model_state_dict"]), extra
    if isinstance(stored, dict) and stored and all(isinstance(v, torch.Tensor)
                                                  for v in stored.values()):
        return dict(stored), {}
    raise FitsnapError(f"{path}: holds neither a FitSNAP checkpoint (model_state_dict) nor a "
                       "state dict")


def _networks_from_state_dict(state: dict[str, torch.Tensor], where: str,
                              n_descriptors: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per FitSNAP network, its Linear layers [(W (out, in), b (out,))] in order, float64."""
    modules: dict[int, dict[int, dict[str, np.ndarray]]] = {}
    for key, tensor in state.items():
        match = _KEY.match(key)
        if not match:
            raise FitsnapError(f"{where}: key {key!r} is not part of a FitSNAP network "
                               "(network_architecture<t>.<module>.weight/bias)")
        net, module, kind = int(match[1]), int(match[2]), match[3]
        value = tensor.detach().to(torch.float64).numpy().copy()
        modules.setdefault(net, {}).setdefault(module, {})[kind] = value
    if sorted(modules) != list(range(len(modules))) or not modules:
        raise FitsnapError(f"{where}: networks {sorted(modules)} are not numbered 0, 1, ...")
    networks = []
    for net in sorted(modules):
        indices = sorted(modules[net])
        expected = [0, *range(1, indices[-1] + 1, 2)]
        if indices != expected or indices[-1] < 1:
            raise FitsnapError(
                f"{where}: network_architecture{net} has Linear modules {indices}; FitSNAP's "
                f"layout is {expected} (standardisation, then Linear/activation pairs)")
        layers = []
        for index in indices:
            entry = modules[net][index]
            if set(entry) != {"weight", "bias"}:
                raise FitsnapError(f"{where}: network_architecture{net}.{index} lacks a "
                                   f"{'bias' if 'weight' in entry else 'weight'}")
            layers.append((entry["weight"], entry["bias"]))
        n_in = n_descriptors
        for index, (w, b) in zip(indices, layers, strict=True):
            if w.ndim != 2 or w.shape[1] != n_in or b.shape != (w.shape[0],):
                raise FitsnapError(
                    f"{where}: network_architecture{net}.{index} has weight {tuple(w.shape)}, "
                    f"bias {tuple(b.shape)}; expected {n_in} inputs (the spec has "
                    f"{n_descriptors} descriptors per atom)")
            n_in = w.shape[0]
        if layers[0][0].shape[0] != n_descriptors or layers[-1][0].shape[0] != 1:
            raise FitsnapError(f"{where}: network_architecture{net} does not map "
                               f"{n_descriptors} descriptors through a ({n_descriptors}, "
                               f"{n_descriptors}) standardisation layer to one energy")
        if not all(np.all(np.isfinite(w)) and np.all(np.isfinite(b)) for w, b in layers):
            raise FitsnapError(f"{where}: network_architecture{net} has NaN/inf parameters")
        networks.append(layers)
    return networks


def _eshift_removed(config: FitsnapInput, eshift: str) -> np.ndarray:
    """eV per atom of each element to subtract from the network outputs."""
    shifts = np.array([(config.eshift or {}).get(e, 0.0) for e in config.spec.elements])
    if eshift not in ("auto", "subtract", "ignore"):
        raise FitsnapError(f"eshift must be auto, subtract or ignore, not {eshift!r}")
    if eshift == "ignore" or not shifts.any():
        return np.zeros_like(shifts)
    if eshift == "subtract" or config.scraper in FILE_SCRAPERS:
        return shifts
    raise FitsnapError(
        f"{config.path}: [ESHIFT] is set, but whether FitSNAP added it to the energies the "
        f"network learned depends on the scraper: its {', '.join(FILE_SCRAPERS)} scrapers "
        "add it, its ASE scraper (Python) does not, and this file names none. Say which: "
        "--eshift subtract (network outputs include it) or --eshift ignore")


def fitsnap_network(
    state: dict[str, torch.Tensor],
    config: FitsnapInput,
    activation: str = FITSNAP_ACTIVATION,
    eshift: str = "auto",
    where: str = "state dict",
) -> SpeciesNetworks:
    """The toolkit model computing exactly the per-atom energies of a FitSNAP network.

    FitSNAP's standardisation layer ``Linear(D, D)`` (no activation after it) is folded
    into the first hidden layer: W = W1 W0, b = W1 b0 + b1; the ``nn`` file then gets mean
    0 and std 1. ``activation`` is the one FitSNAP put between the layers (the state dict
    does not record it): FitSNAP 3.1.0.4 always uses Softplus, which LAMMPS ``mliap model
    nn`` cannot evaluate, so such networks are refused unless they have no hidden layer.
    ``eshift``: subtract ``[ESHIFT]`` per element (``auto``: when a file scraper added it).
    """
    spec = config.spec
    if config.units != "metal":
        raise FitsnapError(f"{config.path} [REFERENCE]: units {config.units}; the toolkit "
                           "works in LAMMPS metal units (eV, A)")
    if config.reference_pair_style.split()[:1] != ["zero"]:
        raise FitsnapError(
            f"{config.path} [REFERENCE]: pair_style {config.reference_pair_style}: FitSNAP "
            "trained the network on E - E_reference, and a toolkit potential holds the "
            "network alone, so its energies would miss that term. Only `zero` converts")
    if config.per_atom_scalar:
        raise FitsnapError(f"{config.path} [CALCULATOR]: per_atom_scalar = 1, so the network "
                           "predicts a per-atom scalar, not an energy")
    if config.scraper_units:
        raise FitsnapError(f"{config.path} [SCRAPER]: property_array converts units of the "
                           "training energies; convert only networks trained in eV")
    networks = _networks_from_state_dict(state, where, spec.n_descriptors)
    n_elements = len(spec.elements)
    if len(networks) not in (1, n_elements):
        raise FitsnapError(f"{where}: {len(networks)} networks for {n_elements} types; FitSNAP "
                           "has one (multi_element_option 1) or one per type (2)")
    shared = len(networks) == 1
    if config.hidden is not None and n_elements > 1 and \
            shared != (config.multi_element_option == 1):
        raise FitsnapError(f"{where}: {len(networks)} networks, but {config.path} says "
                           f"multi_element_option = {config.multi_element_option}")
    hidden = tuple(w.shape[0] for w, _ in networks[0][1:-1])
    if any(tuple(w.shape[0] for w, _ in net[1:-1]) != hidden for net in networks):
        raise FitsnapError(f"{where}: the per-type networks differ in shape; LAMMPS mliap nn "
                           "shares one architecture across elements")
    if config.hidden is not None and config.hidden != hidden:
        raise FitsnapError(f"{where}: hidden widths {hidden}, but {config.path} has "
                           f"layer_sizes num_desc {' '.join(map(str, config.hidden))} 1")
    activation = activation.lower()
    if hidden and activation not in ACTIVATIONS:
        reason = ("FitSNAP 3.1.0.4 puts torch.nn.Softplus after every hidden layer "
                  "(fitsnap3lib/lib/neural_networks/pytorch.py, create_torch_network)"
                  if activation == FITSNAP_ACTIVATION else f"activation {activation!r}")
        raise FitsnapError(
            f"{where}: {reason}; LAMMPS mliap model nn evaluates only {', '.join(ACTIVATIONS)} "
            "and would treat anything else as linear, so no nn file is written. Run it "
            "through `mliap model mliappy` (a LAMMPS with its PYTHON package), or train "
            "the same descriptors and layer sizes with `aetk fit --fitsnap-input`. If your "
            "FitSNAP was changed to another activation, name it with --activation")
    architecture = Architecture(hidden, activation if hidden else "linear")
    parts = []
    for s in range(n_elements):
        layers = networks[0 if shared else s]
        (w0, b0), (w1, b1) = layers[0], layers[1]
        folded = [(w1 @ w0, w1 @ b0 + b1), *layers[2:]]
        parts += [np.concatenate([w.reshape(-1), b]) for w, b in folded]
    d = spec.n_descriptors
    normalisation = Normalisation(np.zeros((n_elements, d)), np.ones((n_elements, d)), 1.0,
                                  -_eshift_removed(config, eshift))
    return SpeciesNetworks(spec, architecture, torch.from_numpy(np.concatenate(parts)),
                           normalisation, spec.elements)


def convert_fitsnap_network(
    checkpoint: str | Path,
    fitsnap_input: str | Path,
    out: str | Path,
    activation: str = FITSNAP_ACTIVATION,
    eshift: str = "auto",
) -> Path:
    """Write a FitSNAP PyTorch network as a toolkit potential directory (native ``nn``).

    ``checkpoint``: FitSNAP's ``save_state_output`` file (or a bare state dict);
    ``fitsnap_input``: the input file it was trained with (descriptors, sizes, shifts).
    The potential has no repulsive wall (there is no training data to place one).
    """
    from toolkit.models.potential import write_potential

    config = read_fitsnap_input(fitsnap_input)
    state, extra = load_fitsnap_state_dict(checkpoint)
    model = fitsnap_network(state, config, activation, eshift, where=str(checkpoint))
    removed = -model.normalisation.shift
    meta = {"source": {
        "kind": "FitSNAP PyTorch network",
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_sha256": file_hash(checkpoint),
        "fitsnap_input": str(Path(fitsnap_input).resolve()),
        "fitsnap_input_sha256": file_hash(fitsnap_input),
        "networks": "one per type" if len({_KEY.match(k)[1] for k in state}) == len(
            config.spec.elements)
        else "one shared by all types",
        "activation": model.architecture.activation,
        "eshift_subtracted_eV": dict(zip(config.spec.elements, removed.tolist(), strict=True)),
        "standardisation": "FitSNAP's Linear(D, D) input layer folded into the first layer",
        **extra,
    }}
    return write_potential(out, model, meta)


