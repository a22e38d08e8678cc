"""MD: `aetk md`."""

from __future__ import annotations

import argparse

from toolkit.cli.common import liquid_arguments


def _cmd_md(args: argparse.Namespace) -> None:
    import json

    from toolkit.md import MDRun, compare_with_reference, run_md
    from toolkit.parallel import is_rank0, world

    natoms = args.atoms or (64 if args.lattice == "diamond" else 108)
    run = MDRun(args.potential, args.system, natoms, args.temperature, args.ensemble,
                args.steps, args.seed, timestep=args.timestep / 1000.0,
                melt_steps=args.melt_steps, equilibration_steps=args.equilibration_steps,
                dump_every=args.dump_every, per_atom_energies=args.per_atom,
                lattice=args.lattice, lattice_constant=args.lattice_constant)
    result = run_md(run, args.out, progress=not args.quiet)
    rank0 = is_rank0(world())
    summary = result.summary
    if rank0:
        short = {k: summary[k] for k in ("mean_pe_per_atom", "mean_temperature", "ns_per_day")
                 if k in summary}
        if "nve" in summary:
            short["drift_ev_per_atom_per_ns"] = summary["nve"]["drift_ev_per_atom_per_ns"]
        if "closest_pair_min" in summary:
            short["closest_pair_min_A"] = summary["closest_pair_min"]
        if "wall" in summary:
            short["wall_inside_fraction"] = summary["wall"]["fraction_of_frames_inside"]
        print(f"{result.status}: {summary['production_steps_done']} production steps in "
              f"{result.out_dir} (md.lmp, trajectory.dump, thermo.csv, summary.json): "
              + json.dumps({k: float(f"{v:.5g}") for k, v in short.items()}))
    if args.compare_reference and result.status == "completed":
        comparison = compare_with_reference(result, args.reference, progress=not args.quiet)
        if rank0:
            print(f"vs reference {args.reference}: integrated |g - g_ref| (A) "
                  + json.dumps({k: round(v, 4) for k, v in
                                comparison["rdf_integrated_abs_difference_A"].items()})
                  + f"; {result.out_dir / 'rdf.png'}, {result.out_dir / 'comparison.json'}")


def add_parsers(sub) -> None:
    p = sub.add_parser("md", help="MD of the liquid with a potential in LAMMPS (works under "
                       "mpirun); thermo, trajectory, summary; optional reference comparison")
    p.add_argument("--potential", required=True,
                   help="potential directory, or reference:lj / reference:lj+atm")
    liquid_arguments(p)
    p.add_argument("--ensemble", choices=["nvt", "nve"], default="nvt")
    p.add_argument("--steps", type=int, required=True, help="production steps")
    p.add_argument("--timestep", type=float, default=2.0, help="fs")
    p.add_argument("--melt-steps", type=int, default=2500,
                   help="steps of LJ melt from the fcc start (2.5 T -> T)")
    p.add_argument("--equilibration-steps", type=int, default=2500,
                   help="NVT steps with the potential before production")
    p.add_argument("--dump-every", type=int, default=100, help="steps between frames")
    p.add_argument("--lattice", default="fcc", choices=["fcc", "bcc", "sc", "hcp", "diamond"],
                   help="start lattice (Ar/Kr default: fcc at the 120 K liquid density)")
    p.add_argument("--lattice-constant", type=float,
                   help="A; needed for elements without a classical reference (their melt "
                   "phase uses the potential itself; --melt-steps 0 keeps the crystal)")
    p.add_argument("--per-atom", action="store_true",
                   help="per-atom energies (compute pe/atom) in the trajectory")
    p.add_argument("--compare-reference", action="store_true",
                   help="repeat the run with the classical reference; g(r) plot and numbers")
    p.add_argument("--reference", choices=["lj", "lj+atm"], default="lj",
                   help="reference for --compare-reference")
    p.add_argument("--out", required=True, help="output folder, e.g. runs/NAME")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_md)

