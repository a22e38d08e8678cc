"""Exact bond energies of the classical LJ reference: the pair energy of every pair.

The reference is ``lj/smooth/linear`` cut at ``cutoff_sigma`` x sigma_ij
(:func:`toolkit.reference.classical.pair_setup`):

    E(r) = phi(r) - phi(r_c) - (r - r_c) phi'(r_c)  for r < r_c, else 0,
    phi(r) = 4 eps [(sigma / r)^12 - (sigma / r)^6],

with Lorentz-Berthelot eps, sigma per element pair. Its ``compute pe/atom`` gives each atom
half of each of its pair energies, so the pair energies are the exact bond partition of the
total, and half-bond sums of them are the reference local energies. :func:`lj_pair_energy` is
the formula; :func:`lammps_pair_energies` asks LAMMPS (``compute pair/local dist eng``) for
the same numbers, independently, to check it.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from toolkit.reference.classical import DEFAULT_CUTOFF_SIGMA, pair_setup
from toolkit.species import lorentz_berthelot


def lj_pair_energy(r: np.ndarray, a: str, b: str,
                   cutoff_sigma: float = DEFAULT_CUTOFF_SIGMA) -> np.ndarray:
    """Pair energy (eV) of a-b pairs at distances ``r`` (A) in the classical LJ reference."""
    epsilon, sigma = lorentz_berthelot(a, b)
    r = np.asarray(r, dtype=np.float64)
    rc = cutoff_sigma * sigma

    def phi(x):
        s6 = (sigma / x) ** 6
        return 4.0 * epsilon * (s6 * s6 - s6)

    def dphi(x):
        s6 = (sigma / x) ** 6
        return 4.0 * epsilon * (-12.0 * s6 * s6 + 6.0 * s6) / x

    energy = phi(r) - phi(rc) - (r - rc) * dphi(rc)
    return np.where(r < rc, energy, 0.0)


def bond_pair_energies(atoms: Atoms, bond_atoms: np.ndarray, bond_length: np.ndarray,
                       cutoff_sigma: float = DEFAULT_CUTOFF_SIGMA) -> np.ndarray:
    """Reference pair energy (eV) of each bond (i, j) of a frame at its length (A)."""
    symbols = np.array(atoms.get_chemical_symbols())
    out = np.zeros(len(bond_atoms))
    for a in np.unique(symbols):
        for b in np.unique(symbols):
            if b < a:
                continue
            si, sj = symbols[bond_atoms[:, 0]], symbols[bond_atoms[:, 1]]
            mask = ((si == a) & (sj == b)) | ((si == b) & (sj == a))
            out[mask] = lj_pair_energy(bond_length[mask], a, b, cutoff_sigma)
    return out


def lammps_pair_energies(atoms: Atoms, elements: tuple[str, ...] = ("Ar", "Kr"),
                         cutoff_sigma: float = DEFAULT_CUTOFF_SIGMA,
                         ) -> tuple[np.ndarray, np.ndarray, float]:
    """(distances A, pair energies eV, total potential energy eV) of every pair inside the
    reference cutoff, as LAMMPS's ``compute pair/local dist eng`` reports them (each pair
    once), for checking :func:`lj_pair_energy` independently."""
    from lammps import LMP_STYLE_LOCAL, LMP_TYPE_ARRAY

    from toolkit.lammps import Lammps, self_comm

    index = {s: t + 1 for t, s in enumerate(elements)}
    with Lammps(comm=self_comm()) as lmp:
        lmp.setup_box(elements)
        lmp.commands(pair_setup(list(elements), "lj", cutoff_sigma))
        lmp.commands(["neighbor 1.0 bin", "compute pairs all pair/local dist eng",
                      "thermo_style custom step pe", "thermo_modify format float %.17g"])
        lmp.load_atoms(atoms, index.__getitem__)
        lmp.command("run 0 post no")
        table = np.array(lmp.raw.numpy.extract_compute("pairs", LMP_STYLE_LOCAL,
                                                       LMP_TYPE_ARRAY), dtype=np.float64)
        total = lmp.thermo("pe")
    table = table.reshape(-1, 2)
    return table[:, 0], table[:, 1], total
