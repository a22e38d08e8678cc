"""`aetk`: the command line. Each module parses one group of subcommands and calls library
functions, nothing more: :mod:`~toolkit.cli.data`, :mod:`~toolkit.cli.models`,
:mod:`~toolkit.cli.studies`, :mod:`~toolkit.cli.dft`, :mod:`~toolkit.cli.md`,
:mod:`~toolkit.cli.fitsnap`, :mod:`~toolkit.cli.points`.

Errors: an :class:`toolkit.errors.AetkError` (something the user can fix) is printed as one
line. Anything else is a bug in the toolkit: one line says so and where the traceback went
(``$AETK_LOG_DIR`` or ``~/.cache/aetk/logs``); ``AETK_TRACEBACK=1`` prints it instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from toolkit import __version__
from toolkit.errors import AetkError

GROUPS = ("data", "models", "studies", "dft", "md", "fitsnap", "points")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="aetk",
        description="Atomic-energy toolkit: reference data, SNAP descriptors, per-species "
        "networks trained on total energies, native LAMMPS mliap export and evaluation, and "
        "what the learned atomic energies mean.",
    )
    parser.add_argument("--version", action="version", version=f"aetk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        importlib.import_module(f"toolkit.cli.{group}").add_parsers(sub)
    return parser


def log_dir() -> Path:
    return Path(os.environ.get("AETK_LOG_DIR", Path.home() / ".cache" / "aetk" / "logs"))


def _report_bug(command: str, exc: BaseException) -> Path | None:
    """Write the traceback of an unexpected error to a log file; its path, or None."""
    text = "".join(traceback.format_exception(exc))
    try:
        directory = log_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"aetk-{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.write_text(f"aetk {__version__}: {' '.join(sys.argv)}\n\n{text}")
        return path
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("aetk: interrupted", file=sys.stderr)
        return 130
    except AetkError as exc:
        print(f"aetk {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not a user error: keep the traceback
        if os.environ.get("AETK_TRACEBACK"):
            raise
        path = _report_bug(args.command, exc)
        where = f"traceback in {path}" if path else "traceback:\n" + traceback.format_exc()
        print(f"aetk {args.command}: internal error ({type(exc).__name__}: {exc}); this is a "
              f"bug in aetk, please report it; {where}", file=sys.stderr)
        return 1
    return 0
