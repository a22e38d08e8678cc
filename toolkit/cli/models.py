"""Models: `aetk fit`, `aetk evaluate`, `aetk export`, `aetk assemble`."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.cli.common import WALL_HELP, device_argument
from toolkit.errors import AetkError


def _cmd_fit(args: argparse.Namespace) -> None:
    import json

    from toolkit.descriptors import read_spec
    from toolkit.models.fitting import fit_potential
    from toolkit.models.networks import Architecture
    from toolkit.models.training import TrainingSettings, resolve_device

    settings = TrainingSettings(max_iterations=args.max_iterations, patience=args.patience,
                                device=args.device)
    resolve_device(settings.device)  # before reading data: a missing GPU is refused at once
    architecture = Architecture(tuple(args.hidden or [16]), args.activation)
    potential, metrics = fit_potential(
        args.data, args.out, architecture, seed=args.seed,
        spec=read_spec(args.spec), split_seed=args.split_seed, settings=settings,
        progress=not args.quiet, wall=not args.no_wall)
    summary = {"total_r2": metrics["total"]["r2"],
               "total_rmse_per_atom_meV": 1e3 * metrics["total_per_atom_rmse"]}
    if "local" in metrics:
        summary.update(local_r2=metrics["local"]["r2"],
                       local_r2_aligned=metrics["local_aligned"]["r2"],
                       local_pearson=metrics["local"]["pearson"])
    print(f"wrote potential {potential.directory}")
    print("held-out test frames (PyTorch): " + json.dumps(
        {k: round(v, 4) for k, v in summary.items()}))


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import json

    from toolkit.data import read_frames
    from toolkit.evaluation import evaluate_to_files
    from toolkit.lammps import world_comm
    from toolkit.models.potential import read_potential

    potential = read_potential(args.potential)
    frames = read_frames(args.data)
    if args.frames == "test":
        frames = [frames[i] for i in potential.test_split(args.data)]
    if args.replicate > 1:
        from toolkit.evaluation import replicate

        frames = [replicate(atoms, args.replicate) for atoms in frames]
    out = args.out or str(Path(args.potential) / "evaluation.json")
    metrics = evaluate_to_files(potential, frames, args.data, out, mode=args.mode,
                                progress=not args.quiet)
    if world_comm().Get_rank() == 0:
        short = {"total_r2": metrics["total"]["r2"]}
        if "local" in metrics:
            short.update(local_r2=metrics["local"]["r2"],
                         local_r2_aligned=metrics["local_aligned"]["r2"])
        print(f"wrote {out} and {Path(out).with_suffix('.atoms.csv')}: "
              + json.dumps({k: round(v, 4) for k, v in short.items()}))


def _cmd_export(args: argparse.Namespace) -> None:
    from toolkit.studies.sweep import export_member

    hidden = args.hidden
    if len(set(hidden)) != 1:
        raise AetkError("sweep cells have equal widths in every layer; repeat one --hidden")
    path = export_member(args.sweep, args.system, args.activation, len(hidden), hidden[0],
                         args.seed, args.out, wall=not args.no_wall)
    print(f"wrote potential {path}")


def _cmd_assemble(args: argparse.Namespace) -> None:
    from toolkit.studies.transfer import assemble

    sources = {}
    for item in args.element:
        element, sep, path = item.partition("=")
        if not sep or not path:
            raise AetkError(f"--element {item!r}: write ELEMENT=POTENTIAL_DIR, e.g. Ar=pots/ar")
        sources[element] = path
    potential = assemble(sources, args.out, wall=not args.no_wall)
    print(f"wrote potential {potential.directory} ("
          + ", ".join(f"{e} from {p}" for e, p in sources.items()) + ")")


def add_parsers(sub) -> None:
    p = sub.add_parser("fit", help="train per-species networks on total energies; export a "
                       "LAMMPS mliap potential directory")
    p.add_argument("--data", required=True, help="training frames (.extxyz)")
    p.add_argument("--hidden", type=int, action="append", default=None,
                   help="hidden layer width; repeat for depth (default: one layer of 16)")
    p.add_argument("--activation", default="tanh",
                   help="linear, tanh, sigmoid or relu (what LAMMPS mliap nn evaluates)")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the 70/10/20 train/validation/test split by frame")
    p.add_argument("--spec", help="descriptor spec TOML; default built in")
    p.add_argument("--max-iterations", type=int, default=1000)
    p.add_argument("--patience", type=int, default=50)
    device_argument(p)
    p.add_argument("--out", required=True, help="potential directory to write")
    p.add_argument("--no-wall", action="store_true", help=WALL_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("evaluate", help="per-atom and total energies through LAMMPS "
                       "(works under mpirun); metrics JSON + per-atom CSV")
    p.add_argument("--potential", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--frames", choices=["all", "test"], default="all",
                   help="'test': only the potential's held-out test frames of its own data")
    p.add_argument("--mode", choices=["frames", "domain"], default="frames",
                   help="under mpirun: share frames over ranks, or decompose each frame")
    p.add_argument("--replicate", type=int, default=1,
                   help="evaluate each frame repeated N x N x N (large-box path)")
    p.add_argument("--out", help="metrics JSON (default POTENTIAL/evaluation.json)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("export", help="write one sweep member as a potential directory")
    p.add_argument("--sweep", required=True)
    p.add_argument("--system", required=True,
                   help="Ar, Kr, ArKr (50/50) or atom counts such as Ar24Kr8")
    p.add_argument("--activation", required=True)
    p.add_argument("--hidden", type=int, action="append", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--no-wall", action="store_true", help=WALL_HELP)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("assemble", help="one LAMMPS potential from per-element networks of "
                       "different potentials (e.g. pure Ar + pure Kr for the mixture)")
    p.add_argument("--element", action="append", required=True,
                   help="ELEMENT=POTENTIAL_DIR; repeat per element")
    p.add_argument("--out", required=True)
    p.add_argument("--no-wall", action="store_true",
                   help="drop the sources' repulsive walls (default: merge them)")
    p.set_defaults(func=_cmd_assemble)

