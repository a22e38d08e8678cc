"""The one base class for errors a user can fix, and which exceptions the CLI shortens.

Every error that a user can fix (bad input file, unknown element, inconsistent potential,
refused configuration) derives from :class:`AetkError`; the CLI prints those as one line.
Anything else is a bug: the CLI prints one line and writes the traceback to a log file.
"""

from __future__ import annotations


class AetkError(Exception):
    """An error the user can fix; the message says what is wrong and how to fix it."""


class FrameError(AetkError, ValueError):
    """A frame file or frame is unusable; the message names file, frame and a fix."""
