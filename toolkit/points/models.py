"""Models on reference points, E = sum_p f_type(p)(B_p) (+ sum_i f_s(i)(B_i)), and what they say.

Training needs nothing new: a :class:`~toolkit.points.descriptors.PointDescriptors`
container holds one row per point (and per atom for a combined model) with a species index
per point type, so :func:`toolkit.models.training.train_ensemble` trains one network per
point type (and element) on frame totals, exactly as it trains atom-centred models. This
module turns the trained networks into energies of points and atoms:

- :func:`row_energies`: energy of every row (eV), every ensemble member;
- :func:`atomic_energies_from_bonds`: an atom's energy as its own term (combined models)
  plus half of each of its bonds, so the energies of the atoms of a frame sum to the model's
  total; every bond is split equally between its two atoms, by construction.
"""

from __future__ import annotations

import numpy as np

from toolkit.models.networks import atomic_energies
from toolkit.models.training import TrainedEnsemble
from toolkit.points.descriptors import PointDescriptors


def row_energies(ensemble: TrainedEnsemble, data: PointDescriptors) -> np.ndarray:
    """(M, rows): the energy (eV) each member gives each row (atom or point) of ``data``."""
    d = data.descriptors
    return atomic_energies(ensemble.networks, ensemble.theta, ensemble.normalisation,
                           d.values, d.species_index)


def frame_totals(energies: np.ndarray, data: PointDescriptors) -> np.ndarray:
    """(M, F): sums of row energies per frame."""
    n = data.n_frames
    return np.stack([np.bincount(data.frame_index, weights=e, minlength=n)
                     for e in np.atleast_2d(energies)])


def atomic_energies_from_bonds(energies: np.ndarray, data: PointDescriptors,
                               atoms_per_frame: np.ndarray) -> np.ndarray:
    """(M, atoms): own atom term (if any atom rows) + half of each bond, frames concatenated.

    ``atoms_per_frame`` (F,): atom counts of the frames of ``data`` (in its frame order).
    Grid points belong to no atom and are left out, so only bond (+ atom) models sum to
    their totals this way.
    """
    energies = np.atleast_2d(energies)
    offsets = np.concatenate([[0], np.cumsum(atoms_per_frame)]).astype(np.int64)
    out = np.zeros((energies.shape[0], int(offsets[-1])))
    first = offsets[data.frame_index]
    atom_rows = np.flatnonzero(~data.is_point)
    if len(atom_rows):
        # atom rows of a frame come first and in frame order (PointDescriptors layout)
        position = atom_rows - np.searchsorted(data.frame_index, data.frame_index[atom_rows])
        target = first[atom_rows] + position
        for m in range(energies.shape[0]):
            np.add.at(out[m], target, energies[m, atom_rows])
    bond_rows = np.flatnonzero(data.bond_atoms[:, 0] >= 0)
    for end in (0, 1):
        target = first[bond_rows] + data.bond_atoms[bond_rows, end]
        for m in range(energies.shape[0]):
            np.add.at(out[m], target, 0.5 * energies[m, bond_rows])
    return out
