"""Import ``mliap model nn`` potentials written elsewhere (PyXtal_FF, FitSNAP, by hand).

A LAMMPS ``pair_style mliap model nn MODEL descriptor sna DESCRIPTOR`` pair becomes a toolkit
potential directory (:func:`import_mliap_nn`): one :class:`SpeciesNetworks`, written with
:func:`~toolkit.models.potential.write_potential`, so ``aetk evaluate``, ``aetk md``,
``aetk invariant`` and the PyTorch evaluation use it like a model the toolkit trained.

The model file is read exactly as LAMMPS reads it (src/ML-IAP/mliap_model_nn.cpp): ``#``
comments; a line ``nelements nparams``; a line ``NET ndesc nlayers act_1 n_1 ... act_L
n_L`` (the last layer is the output); then per element ``ndesc`` descriptor shifts
(``scale0``), ``ndesc`` scales (``scale1``; input (B - scale0) / scale1) and ``nparams``
numbers, layer by layer and node by node as [bias, weights...]. LAMMPS counts numbers line
by line within a block, so a line that straddles two blocks, a coefficient line of more
than 30 numbers or one of 1024 characters or more would be misread; those are refused, as
are files that end early (LAMMPS would silently leave zeros) or carry extra numbers.

What the toolkit's model type can hold, and what is refused in one line: every hidden layer
with one activation among linear, tanh, sigmoid, relu (LAMMPS evaluates any other name as
linear), an output layer ``linear 1``, and a SNAP descriptor at LAMMPS's defaults for
chemflag, bnormflag, wselfallflag, switchinnerflag (see
:func:`~toolkit.descriptor_spec.parse_mliap_descriptor`).

Imported exactly: descriptor shifts and scales become the normalisation (energy scale 1,
shift 0), the weights the parameters, so the exported ``model.mliap.nn`` holds the same
numbers and LAMMPS evaluates the same function (tested to 1e-10 eV per atom against the
original files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from toolkit.data import file_hash
from toolkit.descriptor_spec import DescriptorSpec, parse_mliap_descriptor
from toolkit.errors import AetkError
from toolkit.models.networks import ACTIVATIONS, Architecture, Normalisation, SpeciesNetworks

MAX_LINE = 1024  # LAMMPS reads lines with fgets into 1024 characters
MAX_COEFFICIENTS_PER_LINE = 30


class MliapImportError(AetkError, ValueError):
    """An ``mliap nn`` model or descriptor file the toolkit cannot import; one line."""


def parse_mliap_nn(text: str, spec: DescriptorSpec, source: str = "model file"
                   ) -> SpeciesNetworks:
    """The model of an ``mliap nn`` file for the descriptor ``spec`` (module doc)."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if len(raw) + 1 >= MAX_LINE:
            raise MliapImportError(f"{source}, line {number}: {len(raw)} characters; LAMMPS reads "
                               f"at most {MAX_LINE - 2} per line and would split it")
        words = raw.split("#", 1)[0].split()
        if words:
            lines.append((number, words))
    if not lines or len(lines[0][1]) != 2:
        raise MliapImportError(f"{source}: the first line must be 'nelements nparams'")
    number, (nelements, nparams) = lines[0]
    nelements, nparams = _int(nelements, source, number), _int(nparams, source, number)
    if len(lines) < 2 or not lines[1][1][0].startswith("NET"):
        raise MliapImportError(f"{source}: the second line must be 'NET ndesc nlayers act n ...'")
    architecture, ndesc = _architecture(lines[1][1], source, lines[1][0])
    if nelements != len(spec.elements):
        raise MliapImportError(f"{source}: {nelements} element(s), but the descriptor file has "
                           f"{len(spec.elements)} ({' '.join(spec.elements)})")
    if ndesc != spec.n_descriptors:
        raise MliapImportError(f"{source}: {ndesc} descriptors, but twojmax {spec.twojmax} gives "
                           f"{spec.n_descriptors}")
    expected = architecture.params_per_species(ndesc)
    if nparams != expected:
        raise MliapImportError(f"{source}: nparams {nparams}, but {architecture.label} on {ndesc} "
                           f"descriptors has {expected}")

    blocks = [("descriptor shifts (scale0)", ndesc), ("descriptor scales (scale1)", ndesc),
              ("network parameters", nparams)] * nelements
    values: list[np.ndarray] = []
    current: list[float] = []
    k = 0
    for number, words in lines[2:]:
        if k >= len(blocks):
            raise MliapImportError(f"{source}, line {number}: numbers after the last element's "
                               "parameters")
        name, size = blocks[k]
        if name == "network parameters" and len(words) > MAX_COEFFICIENTS_PER_LINE:
            raise MliapImportError(f"{source}, line {number}: {len(words)} parameters on one "
                               f"line; LAMMPS accepts at most {MAX_COEFFICIENTS_PER_LINE}")
        current += [_float(w, source, number) for w in words]
        if len(current) > size:
            raise MliapImportError(f"{source}, line {number}: the line runs past the end of the "
                               f"{name} of element {k // 3 + 1} ({size} numbers); LAMMPS "
                               "counts numbers per block and would misread it")
        if len(current) == size:
            values.append(np.array(current))
            current, k = [], k + 1
    if k < len(blocks):
        raise MliapImportError(f"{source}: ends inside the {blocks[k][0]} of element "
                           f"{k // 3 + 1} of {nelements} (LAMMPS would use zeros)")

    mean = np.stack([values[3 * s] for s in range(nelements)])
    std = np.stack([values[3 * s + 1] for s in range(nelements)])
    if np.any(std == 0) or not np.all(np.isfinite(std)) or not np.all(np.isfinite(mean)):
        raise MliapImportError(f"{source}: a descriptor scale (scale1) is zero or not finite; "
                           "LAMMPS divides by it")
    theta = np.concatenate([_toolkit_layout(values[3 * s + 2], architecture, ndesc)
                            for s in range(nelements)])
    if not np.all(np.isfinite(theta)):
        raise MliapImportError(f"{source}: network parameters contain NaN/inf")
    return SpeciesNetworks(spec, architecture, torch.from_numpy(theta),
                           Normalisation(mean, std, 1.0, np.zeros(nelements)), spec.elements)


def _int(word: str, source: str, number: int) -> int:
    try:
        return int(word)
    except ValueError:
        raise MliapImportError(f"{source}, line {number}: '{word}' is not an integer") from None


def _float(word: str, source: str, number: int) -> float:
    try:
        return float(word)
    except ValueError:
        raise MliapImportError(f"{source}, line {number}: '{word}' is not a number") from None


def _architecture(words: list[str], source: str, number: int) -> tuple[Architecture, int]:
    """(architecture, ndesc) of a ``NET`` line; refuses what the toolkit cannot hold."""
    if len(words) < 3:
        raise MliapImportError(f"{source}, line {number}: 'NET ndesc nlayers' is incomplete")
    ndesc, nlayers = _int(words[1], source, number), _int(words[2], source, number)
    pairs = words[3:]
    if nlayers < 1 or len(pairs) != 2 * nlayers:
        raise MliapImportError(f"{source}, line {number}: NET says {nlayers} layers but lists "
                           f"{len(pairs) // 2} 'activation nodes' pairs")
    layers = [(pairs[2 * i], _int(pairs[2 * i + 1], source, number)) for i in range(nlayers)]
    for activation, _ in layers:
        if activation not in ACTIVATIONS:
            raise MliapImportError(f"{source}, line {number}: activation '{activation}' is not one "
                               f"LAMMPS knows ({', '.join(ACTIVATIONS)}); LAMMPS would treat "
                               "it as linear, so write linear if that is meant")
    output = layers[-1]
    if output != ("linear", 1):
        raise MliapImportError(f"{source}, line {number}: the output layer is '{output[0]} "
                           f"{output[1]}'; the toolkit's networks end in 'linear 1' (one "
                           "energy per atom)")
    hidden = layers[:-1]
    activations = {a for a, _ in hidden}
    if len(activations) > 1:
        raise MliapImportError(f"{source}, line {number}: hidden layers use {sorted(activations)}; "
                           "the toolkit's networks share one activation across hidden layers")
    if any(n < 1 for _, n in hidden):
        raise MliapImportError(f"{source}, line {number}: a layer has no nodes")
    activation = hidden[0][0] if hidden else "linear"
    return Architecture(tuple(n for _, n in hidden), activation), ndesc


def _toolkit_layout(coefficients: np.ndarray, architecture: Architecture, ndesc: int
                    ) -> np.ndarray:
    """LAMMPS's node-by-node [bias, weights] -> the toolkit's [W (row-major), b] per layer."""
    out, offset = [], 0
    for n_in, n_out in architecture.layer_sizes(ndesc):
        block = coefficients[offset:offset + n_out * (n_in + 1)].reshape(n_out, n_in + 1)
        offset += n_out * (n_in + 1)
        out += [block[:, 1:].reshape(-1), block[:, 0]]
    return np.concatenate(out)


def read_mliap_nn(model: str | Path, descriptor: str | Path) -> SpeciesNetworks:
    """The model of a LAMMPS ``mliap nn`` model file and its SNAP descriptor file."""
    model, descriptor = Path(model), Path(descriptor)
    for path in (model, descriptor):
        if not path.is_file():
            raise MliapImportError(f"{path}: no such file")
    spec = parse_mliap_descriptor(descriptor.read_text(errors="replace"), str(descriptor))
    return parse_mliap_nn(model.read_text(errors="replace"), spec, str(model))


def import_mliap_nn(model: str | Path, descriptor: str | Path, out: str | Path) -> Path:
    """Write the potential directory of a LAMMPS ``mliap nn`` model (module doc).

    No repulsive wall: the toolkit has no training data to place one below. Pair styles
    overlaid on the mliap model in its original input (e.g. a ZBL core) are not part of
    the model files and are not imported.
    """
    from toolkit.models.potential import write_potential

    networks = read_mliap_nn(model, descriptor)
    meta = {
        "imported": {
            "model": str(Path(model).resolve()), "model_sha256": file_hash(model),
            "descriptor": str(Path(descriptor).resolve()),
            "descriptor_sha256": file_hash(descriptor),
            "note": "imported mliap nn model: normalisation = its scale0/scale1, energy "
                    "scale 1, shift 0; no training data, split or repulsive wall",
        },
    }
    return write_potential(out, networks, meta)
