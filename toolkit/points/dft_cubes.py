"""CP2K single points that keep their cube files, for energy densities on reference points.

The shipped DFT set (datasets/dft/) keeps per-basin numbers only. A grid-centred model's
energies are compared with the electrostatic energy density, so a few frames are recomputed
here with the settings of the shipped set (:data:`toolkit.reference.dft.campaign.SETTINGS`,
300 Ry) and their cubes are kept: frames under ``OUT/frames/``, and one free atom per element
and box (``OUT/free/<element>-<box>/``, the atom at the origin) whose density, shifted to
every nucleus, gives the promolecule that :mod:`toolkit.points.energy_density` subtracts.
Everything is resumable (:func:`toolkit.reference.dft.run_dft`): a finished frame is never
recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ase import Atoms

from toolkit.data import atomic_write_text, read_frames


def free_atom(symbol: str, cell_lengths: Sequence[float]) -> Atoms:
    """One atom at the origin of an orthorhombic box (the frame's box, so the same grid)."""
    return Atoms([symbol], positions=[[0.0, 0.0, 0.0]], cell=list(cell_lengths), pbc=True)


def box_label(lengths: Sequence[float]) -> str:
    return "x".join(f"{float(v):.4f}" for v in lengths)


def compute_cubes(data: str | Path, frames: Sequence[int], out: str | Path,
                  progress: bool = True) -> dict:
    """Single points with kept cubes for ``frames`` of ``data`` and the free atoms they need.

    Returns (and writes to ``OUT/manifest.json``) where each frame's directory is and which
    free-atom directory belongs to each (element, box).
    """
    from toolkit.reference.dft import run_dft
    from toolkit.reference.dft.campaign import SETTINGS
    from toolkit.reference.dft.runner import frame_dir

    out = Path(out)
    all_frames = read_frames(data)
    chosen = [all_frames[i] for i in frames]
    run_dft(chosen, out / "frames", SETTINGS, keep_cubes=True, progress=progress)
    free = {}
    for atoms in chosen:
        lengths = [float(v) for v in atoms.cell.lengths()]
        for symbol in sorted(set(atoms.get_chemical_symbols())):
            key = f"{symbol}-{box_label(lengths)}"
            if key not in free:
                run_dft([free_atom(symbol, lengths)], out / "free" / key, SETTINGS,
                        keep_cubes=True, progress=False)
                free[key] = str(frame_dir(out / "free" / key, 0))
    manifest = {"data": str(data), "frames": [int(i) for i in frames],
                "frame_dirs": [str(frame_dir(out / "frames", k)) for k in range(len(chosen))],
                "free_atoms": free, "settings": "toolkit.reference.dft.campaign.SETTINGS"}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest
