"""The quantum reference: CP2K single points of frames, shared by workers, and campaigns.

- :mod:`~toolkit.reference.dft.cp2k`: settings, launcher, input text, output parsing;
- :mod:`~toolkit.reference.dft.claims`: frame claims for several workers on one directory;
- :mod:`~toolkit.reference.dft.runner`: ``run_dft`` (resumable, frame by frame) and
  ``aetk dft``;
- :mod:`~toolkit.reference.dft.campaign`: the shipped data set, built from independent
  classical trajectories per composition and stored as compact records.

Bader basins and their electrostatic energies: :mod:`toolkit.reference.bader`; the linear
map to local energies: :mod:`toolkit.reference.local_energy`.
"""

from toolkit.reference.dft.claims import CLAIM, claim_frame, release_frame
from toolkit.reference.dft.cp2k import (
    BOHR,
    CUBES,
    HARTREE,
    DftError,
    DftSettings,
    Launcher,
    electrostatic_energy,
    input_text,
    parse_output,
    run_single_point,
    same_structure,
)
from toolkit.reference.dft.runner import (
    DONE,
    FAILED,
    DftJob,
    DftSummary,
    _write_structures,
    dft_command,
    frame_dir,
    run_dft,
)

__all__ = [
    "BOHR", "CLAIM", "CUBES", "DONE", "FAILED", "HARTREE", "DftError", "DftJob", "DftSettings",
    "DftSummary", "Launcher", "_write_structures", "claim_frame", "dft_command",
    "electrostatic_energy", "frame_dir", "input_text", "parse_output", "release_frame",
    "run_dft", "run_single_point", "same_structure",
]
