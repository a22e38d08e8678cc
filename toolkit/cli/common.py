"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse

WALL_HELP = ("leave out the repulsive ZBL walls that start below each element pair's "
             "closest pair in the data (zero on every data frame; stops MD collapse, see "
             "toolkit/models/wall.py)")


def liquid_arguments(p: argparse.ArgumentParser) -> None:
    """The liquid box shared by `generate` and `md`."""
    p.add_argument("--system", required=True,
                   help="Ar, Kr, ArKr (50/50), atom counts such as Ar24Kr8, or an element (Si)")
    p.add_argument("--atoms", type=int, default=None,
                   help="atom count: basis x n^3 of the start lattice (fcc 32, 108, 256, ...; "
                   "diamond 64, 216, ...); default 108, or 64 for a diamond lattice")
    p.add_argument("--temperature", type=float, default=120.0, help="K")
    p.add_argument("--seed", type=int, default=1, help="velocities, mixture species, frames")


def device_argument(p: argparse.ArgumentParser, default: str | None = "cpu") -> None:
    """``--device cpu|cuda``: where networks train (float64 on both)."""
    p.add_argument("--device", default=default,
                   help="cpu or cuda (cuda:N); training runs in float64 on both; a machine "
                   "without a GPU refuses cuda" + ("" if default else
                                                  " (default: the config's [training] device)"))
