"""The one base class for errors a user can fix, and which exceptions the CLI shortens.

Every error that a user can fix (bad input file, unknown element, inconsistent potential,
refused configuration) derives from :class:`AetkError`; the CLI prints those as one line.
Anything else is a bug: the CLI prints one line and writes the traceback to a log file.
"""

from __future__ import annotations


class AetkError(Exception):
    """An error the user can fix; the message says what is wrong and how to fix it."""


def user_errors() -> tuple[type[BaseException], ...]:
    from toolkit.data import FrameError
    from toolkit.descriptors import SpecError
    from toolkit.lammps import LammpsError
    from toolkit.md import MDInstabilityError
    from toolkit.networks import ArchitectureError
    from toolkit.potential import PotentialError
    from toolkit.reference.dft import DftError
    from toolkit.sweep import SweepConfigError

    return (AetkError, FrameError, SpecError, LammpsError, ArchitectureError,
            PotentialError, MDInstabilityError, SweepConfigError, DftError, ValueError,
            FileNotFoundError)
