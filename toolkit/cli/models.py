"""Models: `aetk fit`, `aetk evaluate`, `aetk export`, `aetk assemble`, `aetk import`."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.cli.common import WALL_HELP, device_argument
from toolkit.errors import AetkError


def _cmd_fit(args: argparse.Namespace) -> None:
    import json
    import sys

    from toolkit.descriptors import read_spec
    from toolkit.models.fitting import FitConfig, fit_potential, undefined_scores
    from toolkit.models.training import TrainingSettings, resolve_device

    spec, hidden = read_spec(args.spec), args.hidden or [16]
    if args.fitsnap_input:
        from toolkit.interop.fitsnap import fit_setup_from_fitsnap

        spec, hidden = fit_setup_from_fitsnap(args.fitsnap_input, args.spec, args.hidden)
    settings = TrainingSettings(max_iterations=args.max_iterations, patience=args.patience,
                                device=args.device)
    resolve_device(settings.device)  # before reading data: a missing GPU is refused at once
    config = FitConfig(
        data=args.data, hidden=tuple(hidden), activation=args.activation,
        seed=args.seed, split_seed=args.split_seed, split_mode=args.split, spec=spec,
        training=settings,
        wall=not args.no_wall, anchors=args.anchors, anchor_weight=args.anchor_weight)
    potential, metrics = fit_potential(config, args.out, progress=not args.quiet)
    summary = {"total_r2": metrics["total"]["r2"],
               "total_rmse_per_atom_meV": 1e3 * metrics["total_per_atom_rmse"]}
    if "local" in metrics:
        summary.update(local_r2=metrics["local"]["r2"],
                       local_r2_aligned=metrics["local_aligned"]["r2"],
                       local_pearson=metrics["local"]["pearson"])
    print(f"wrote potential {potential.directory}")
    print("held-out test frames (PyTorch): " + json.dumps(
        {k: round(v, 4) for k, v in summary.items()}))
    for note in undefined_scores(metrics):
        print(f"aetk fit: warning: {note}", file=sys.stderr)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import json

    from toolkit.evaluation import EvaluateConfig, evaluate_to_files
    from toolkit.parallel import is_rank0, world

    config = EvaluateConfig(potential=args.potential, data=args.data, frames=args.frames,
                            mode=args.mode, replicate=args.replicate)
    out = args.out or str(Path(args.potential) / "evaluation.json")
    metrics = evaluate_to_files(config, out, progress=not args.quiet)
    if is_rank0(world()):
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


def _cmd_import(args: argparse.Namespace) -> None:
    from toolkit.models.mliap_import import import_mliap_nn
    from toolkit.models.potential import read_potential

    potential = read_potential(import_mliap_nn(args.model, args.descriptor, args.out))
    print(f"wrote potential {potential.directory} ({' '.join(potential.elements)}, "
          f"{potential.architecture.label}, {potential.spec.n_descriptors} SNAP descriptors, "
          f"cutoff {potential.spec.cutoff:g} A)")


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
    p.add_argument("--split", choices=["random", "trajectory"], default="random",
                   help="random 70/10/20 by frame, or whole trajectories held out for testing "
                   "(frames need trajectory= labels, as the DFT campaign's have)")
    p.add_argument("--spec", help="descriptor spec TOML; default built in")
    p.add_argument("--fitsnap-input", help="take the descriptor spec ([BISPECTRUM]) and hidden "
                   "widths ([PYTORCH] layer_sizes) from a FitSNAP input file")
    p.add_argument("--max-iterations", type=int, default=1000)
    p.add_argument("--patience", type=int, default=50)
    device_argument(p)
    p.add_argument("--out", required=True, help="potential directory to write")
    p.add_argument("--no-wall", action="store_true", help=WALL_HELP)
    p.add_argument("--anchors", help="extxyz frames with reference totals always added to the "
                   "training split, e.g. invariant points (aetk invariant --write-frames)")
    p.add_argument("--anchor-weight", type=float, default=1.0,
                   help="loss weight of each anchor frame relative to a data frame")
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

    p = sub.add_parser("import", help="a LAMMPS mliap nn model (+ its SNAP descriptor file) "
                       "written elsewhere as a potential directory")
    p.add_argument("--model", required=True, help="mliap model nn file (e.g. Cu.nn.mliap.model)")
    p.add_argument("--descriptor", required=True, help="its SNAP descriptor file (descriptor sna)")
    p.add_argument("--out", required=True, help="potential directory to write")
    p.set_defaults(func=_cmd_import)
