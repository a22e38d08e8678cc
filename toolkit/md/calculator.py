"""An ASE calculator for a trained potential, evaluated by LAMMPS (``pair_style mliap``).

The numbers are LAMMPS's own (the same ``PotentialSession`` as ``aetk evaluate``), so ASE
dynamics, optimisers or phonon codes see exactly the forces of ``aetk md``. Units: eV, A.

    from toolkit.md.calculator import PotentialCalculator
    atoms.calc = PotentialCalculator("potentials/NAME")
    atoms.get_potential_energy(); atoms.get_forces(); atoms.get_potential_energies()

Boxes must be orthorhombic, periodic and at least twice the descriptor cutoff long (the
same checks as for evaluated frames). No stress: ``pair_style mliap`` gives a virial, but
nothing in this toolkit needs it yet.
"""

from __future__ import annotations

from pathlib import Path

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from toolkit.evaluation import PotentialSession, check_frames_for
from toolkit.models.potential import Potential, read_potential


class PotentialCalculator(Calculator):
    """``energy``, ``free_energy`` (= energy, no electronic entropy), ``forces``, ``energies``."""

    implemented_properties = ["energy", "free_energy", "forces", "energies"]

    def __init__(self, potential: str | Path | Potential, comm=None, **kwargs):
        super().__init__(**kwargs)
        self.potential = (potential if isinstance(potential, Potential)
                          else read_potential(potential))
        self._comm = comm
        self._session: PotentialSession | None = None

    def calculate(self, atoms: Atoms | None = None, properties=("energy",),
                  system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        check_frames_for(self.potential, [self.atoms], "the ASE atoms")
        if self._session is None:  # one LAMMPS instance for the calculator's lifetime
            self._session = PotentialSession(self.potential, comm=self._comm)
        energy, local, forces = self._session.evaluate(self.atoms)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces,
                        "energies": local}

    def close(self) -> None:
        """Free the LAMMPS instance (also done when the calculator is garbage-collected)."""
        if self._session is not None:
            self._session.lmp.close()
            self._session = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: LAMMPS may already be gone
            pass
