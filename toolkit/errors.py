"""Which exceptions the CLI reports as one-line user errors (no traceback)."""

from __future__ import annotations


def user_errors() -> tuple[type[BaseException], ...]:
    from toolkit.data import FrameError
    from toolkit.descriptors import SpecError
    from toolkit.lammps import LammpsError
    from toolkit.md import MDInstabilityError
    from toolkit.networks import ArchitectureError
    from toolkit.potential import PotentialError
    from toolkit.reference.dft import DftError
    from toolkit.species import UnknownSpeciesError
    from toolkit.sweep import SweepConfigError

    return (FrameError, SpecError, LammpsError, UnknownSpeciesError, ArchitectureError,
            PotentialError, MDInstabilityError, SweepConfigError, DftError, ValueError,
            FileNotFoundError)
