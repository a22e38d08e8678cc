"""`aetk`: the command line. Parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolkit import __version__


class UserError(Exception):
    """An error the user can fix; printed as one line, no traceback."""


def _cmd_generate(args: argparse.Namespace) -> None:
    from toolkit.data import write_frames
    from toolkit.reference.classical import ClassicalRun, generate_frames, write_input

    run = ClassicalRun(
        system=args.system,
        reference=args.reference,
        n_frames=args.frames,
        seed=args.seed,
        natoms=args.atoms,
        temperature=args.temperature,
        every=args.every,
    )
    frames = generate_frames(run, progress=not args.quiet)
    out = Path(args.out)
    write_frames(out, frames)
    write_input(run, out.with_suffix(".lmp"), dump_file=out.with_suffix(".dump").name)
    print(f"wrote {len(frames)} frames of {run.system} ({run.reference}) to {out}; "
          f"LAMMPS input: {out.with_suffix('.lmp')}")


def _cmd_descriptors(args: argparse.Namespace) -> None:
    from toolkit.data import read_frames
    from toolkit.descriptors import compute_descriptors, read_spec, summary

    spec = read_spec(args.spec)
    frames = read_frames(args.data)
    descriptors = compute_descriptors(frames, spec, source=args.data, progress=not args.quiet)
    print(summary(descriptors))
    if args.write_mliap:
        from toolkit.descriptors import write_mliap_descriptor

        write_mliap_descriptor(spec, args.write_mliap)
        print(f"wrote ML-IAP descriptor file {args.write_mliap}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aetk",
        description="Atomic-energy toolkit: reference data, SNAP descriptors, per-species "
        "networks trained on total energies, native LAMMPS mliap export and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"aetk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="classical reference MD frames (LAMMPS) as extxyz")
    p.add_argument("--system", required=True, choices=["Ar", "Kr", "ArKr"])
    p.add_argument("--reference", default="lj", choices=["lj", "lj+atm"])
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--atoms", type=int, default=108, help="4 n^3 atoms (32, 108, 256, 500, ...)")
    p.add_argument("--temperature", type=float, default=120.0, help="K")
    p.add_argument("--every", type=int, default=100, help="MD steps (2 fs) between frames")
    p.add_argument("--out", required=True, help="output .extxyz")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("descriptors", help="SNAP descriptors of frames via LAMMPS; summary")
    p.add_argument("--data", required=True)
    p.add_argument("--spec", help="descriptor spec TOML ([descriptor] table); default built in")
    p.add_argument("--write-mliap", help="also write the ML-IAP descriptor file here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_descriptors)
    return parser


def main(argv: list[str] | None = None) -> int:
    from toolkit.errors import user_errors

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("aetk: interrupted", file=sys.stderr)
        return 130
    except user_errors() as exc:
        print(f"aetk {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
