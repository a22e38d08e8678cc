"""Teacher references: partitions that the descriptor represents exactly, and mixtures.

A *teacher* is any exported potential. Frames sampled by classical MD of the liquids are
relabelled with the teacher's own per-atom energies and forces from LAMMPS (``compute
pe/atom`` of ``pair_style mliap``), so the reference partition is, by construction, a
function of the descriptor: its representability ceiling is 1 for the teacher's model
class. Whether a student trained on totals recovers it then isolates *emergence* from
*representability*.

The ``share`` dial moves between the teacher and a classical reference that no descriptor
represents exactly (``other``, default ``lj+atm``), consistently for every label:

    local  = share * teacher_local  + (1 - share) * other_local     (eV per atom)
    energy = share * teacher_energy + (1 - share) * other_energy    (eV; = sum of local)
    forces = share * teacher_forces + (1 - share) * other_forces    (eV/A)

which is the energy model ``share * E_teacher + (1 - share) * E_other``. At share 1 and 0
the labels are bitwise those of the pure references (x * 1.0 + y * 0.0 == x). The stress
of the sampling run is dropped: it belongs to neither labelling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.data import split_frames, validate_frames
from toolkit.descriptors import DescriptorSpec, compute_descriptors
from toolkit.evaluation import predict
from toolkit.models.networks import Architecture
from toolkit.models.potential import Potential, read_potential, write_potential
from toolkit.models.training import TrainingSettings
from toolkit.reference.classical import (
    DEFAULT_CUTOFF_SIGMA,
    REFERENCES,
    ClassicalRun,
    ReferenceDataError,
    evaluate_reference,
    generate_frames,
)
from toolkit.studies.ceiling import SMALL_NETWORK, fit_local_energies, frames_local_energy


def label_with_teacher(
    frames: Sequence[Atoms],
    potential: Potential,
    share: float = 1.0,
    other: str = "lj+atm",
    cutoff_sigma: float = DEFAULT_CUTOFF_SIGMA,
    progress: bool = False,
) -> list[Atoms]:
    """Copies of ``frames`` labelled ``share`` x teacher + (1 - share) x ``other``.

    Labels: ``energy`` (eV), ``forces`` (eV/A), ``local_energy`` (eV); ``info`` records the
    teacher, the share and the other reference. ``cutoff_sigma`` is that of ``other``.
    The teacher's labels are its bare network's, without its repulsive wall if it has one.
    """
    if not 0.0 <= share <= 1.0:
        raise ReferenceDataError(f"share {share} outside [0, 1]")
    if other not in REFERENCES:
        raise ReferenceDataError(f"unknown other reference {other!r}; choose from {REFERENCES}")
    frames = list(frames)
    if share > 0.0:
        # the bare network: a repulsive wall (toolkit/models/wall.py) is not a function of the
        # descriptor, so where it acted the partition would no longer be representable
        teacher = predict(replace(potential, wall=None), frames, progress=progress)
        t_energy, t_local, t_forces = teacher.energy, teacher.local_energy, teacher.forces
    if share < 1.0:
        others = evaluate_reference(frames, other, cutoff_sigma=cutoff_sigma)
        o_energy = np.array([a.info["energy"] for a in others])
        o_local = frames_local_energy(others)
        o_forces = np.concatenate([a.arrays["forces"] for a in others])
    # the reference that is absent contributes exact zeros, so share 0/1 are the pure ones
    if share == 0.0:
        t_energy, t_local, t_forces = (np.zeros_like(o_energy), np.zeros_like(o_local),
                                       np.zeros_like(o_forces))
    if share == 1.0:
        o_energy, o_local, o_forces = (np.zeros_like(t_energy), np.zeros_like(t_local),
                                       np.zeros_like(t_forces))
    energy = share * t_energy + (1.0 - share) * o_energy
    local = share * t_local + (1.0 - share) * o_local
    forces = share * t_forces + (1.0 - share) * o_forces

    labelled, start = [], 0
    for index, atoms in enumerate(frames):
        copy = atoms.copy()
        stop = start + len(atoms)
        copy.info.pop("stress", None)
        copy.info["sampling_reference"] = atoms.info.get("reference", "unknown")
        copy.info["reference"] = "teacher" if share == 1.0 else "teacher-mix"
        copy.info["teacher"] = str(potential.directory)
        copy.info["share"] = float(share)
        copy.info["other"] = other
        copy.info["energy"] = float(energy[index])
        copy.arrays["local_energy"] = local[start:stop].copy()
        copy.arrays["forces"] = forces[start:stop].copy()
        labelled.append(copy)
        start = stop
    return labelled


def generate_teacher_frames(
    run: ClassicalRun,
    potential_dir: str | Path,
    share: float = 1.0,
    other: str = "lj+atm",
    progress: bool = True,
) -> list[Atoms]:
    """Sample ``run`` (classical MD with ``run.reference``) and relabel it with a teacher.

    The potential's descriptor must fit the box (checked) and cover the run's species.
    """
    potential = read_potential(potential_dir)
    frames = generate_frames(run, progress=progress)
    return label_with_teacher(frames, potential, share=share, other=other,
                              cutoff_sigma=run.cutoff_sigma, progress=progress)


def write_teacher(
    frames: Sequence[Atoms],
    out: str | Path,
    architecture: Architecture = SMALL_NETWORK,
    spec: DescriptorSpec | None = None,
    split_seed: int = 0,
    seed: int = 0,
    settings: TrainingSettings | None = None,
    source: str | None = None,
) -> Path:
    """A teacher potential: a per-atom fit of the ``local_energy`` of ``frames``, exported.

    Fitted on the training frames of the standard split (early stopping on validation), so
    the teacher is a representable partition close to the frames' own reference.
    """
    spec = spec or DescriptorSpec()
    validate_frames(frames, source, require=("energy", "local_energy"), cutoff=spec.cutoff,
                    species=spec.elements)
    descriptors = compute_descriptors(frames, spec, source=source, progress=False)
    split = split_frames(len(frames), split_seed)
    settings = settings or TrainingSettings()
    ensemble = fit_local_energies(descriptors, frames_local_energy(frames), split,
                                  architecture, [seed], settings)
    meta = {"seed": seed,
            "teacher": {"objective": "per-atom (e_ref - e_i)^2 on training frames",
                        "reference": sorted({str(a.info.get("reference")) for a in frames}),
                        "n_frames": len(frames), "split_seed": split_seed,
                        "settings": settings.to_dict(),
                        "best_iteration": ensemble.iterations[0]}}
    return write_potential(out, ensemble.member(0), meta)
