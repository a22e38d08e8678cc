"""The quantum reference: `aetk dft`, `aetk partition`."""

from __future__ import annotations

import argparse

from toolkit.errors import AetkError


def _cmd_dft(args: argparse.Namespace) -> None:
    from toolkit.reference.dft import DftJob, DftSettings, Launcher, dft_command

    # default settings except the plane-wave cutoff and the rVV10 grid (vdw_cutoff 150 Ry
    # costs a fifth of the full grid and moved energies by 0.01 meV/atom, docs/dft.md)
    settings = DftSettings(cutoff=args.cutoff, vdw=None if args.vdw == "none" else args.vdw,
                           vdw_cutoff=args.vdw_cutoff)
    job = DftJob(settings, Launcher(np=args.np, omp_threads=args.omp_threads),
                 keep_cubes=args.keep_cubes)
    print(dft_command(args.data, args.out, job, progress=not args.quiet))


def _cmd_partition(args: argparse.Namespace) -> None:
    from toolkit.reference.local_energy import partition_command, partition_joint_command

    if args.joint:
        if args.dft or args.species_offset:
            raise AetkError("--joint takes SYSTEM=PATH items and an --out folder; it does not "
                            "go with --dft or --species-offset")
        sources = {}
        for item in args.joint:
            system, sep, path = item.partition("=")
            if not sep or not path:
                raise AetkError(f"--joint {item!r}: write SYSTEM=PATH, e.g. "
                                "Ar32=datasets/dft/records/Ar32.extxyz")
            sources[system] = path
        joint = partition_joint_command(sources, args.out)
        print(f"wrote {args.out}/ ({', '.join(sources)}, joint.fit.json): slopes "
              + ", ".join(f"{e} {v:.4f}" for e, v in joint.slopes.items()) + "; intercepts "
              + ", ".join(f"{e} {v:.4f}" for e, v in joint.intercepts.items())
              + f" eV/atom; RMSE {1e3 * joint.rmse:.3f} meV/atom over {joint.n_frames} frames")
        return
    if not args.dft:
        raise AetkError("give --dft DIR (one system) or --joint SYSTEM=PATH ... (several)")
    offsets = None
    if args.species_offset:
        offsets = {}
        for item in args.species_offset:
            element, sep, value = item.partition("=")
            try:
                offsets[element] = float(value if sep else "no number")
            except ValueError:
                raise AetkError(f"--species-offset {item!r}: write ELEMENT=EV, e.g. "
                                "Ar=0.1") from None
    fit = partition_command(args.dft, args.out, system=args.system,
                            recompute_basins=args.recompute_basins, species_offsets=offsets)
    print(f"wrote {args.out}: E_total - E_es = {fit.slope:.4f} E_es + {fit.intercept:.4f} "
          f"eV/atom over {fit.n_frames} frames, RMSE {1e3 * fit.rmse:.3f} meV/atom, "
          f"R2 {fit.r2:.4f}")


def add_parsers(sub) -> None:
    p = sub.add_parser("dft", help="CP2K single points of frames (resumable frame by frame): "
                       "energies, forces, density and Hartree cubes, Bader basins")
    p.add_argument("--data", required=True, help="frames (.extxyz), e.g. from aetk generate")
    p.add_argument("--out", required=True, help="DFT work directory, e.g. dft/NAME")
    p.add_argument("--cutoff", type=float, default=600.0, help="plane-wave cutoff, Ry")
    p.add_argument("--np", type=int, default=1, help="MPI ranks of cp2k.psmp (Open MPI)")
    p.add_argument("--omp-threads", type=int, default=1)
    p.add_argument("--vdw", default="rVV10", choices=["rVV10", "none"])
    p.add_argument("--vdw-cutoff", type=float, help="rVV10 grid cutoff, Ry (default: full)")
    p.add_argument("--keep-cubes", action="store_true", help="keep the cube files")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_dft)

    p = sub.add_parser("partition", help="Bader electrostatic partition + linear fit -> "
                       "local DFT energies as extxyz (and the paper's Fig. 1/5/6)")
    p.add_argument("--dft", help="directory made by aetk dft, or a records .extxyz")
    p.add_argument("--joint", action="append",
                   help="SYSTEM=PATH (repeat): one per-species map over several systems; "
                   "--out is then a folder")
    p.add_argument("--out", required=True,
                   help="frames with local_energy (.extxyz); with --joint a folder")
    p.add_argument("--system", help="label written into the frames (default: composition)")
    p.add_argument("--recompute-basins", action="store_true")
    p.add_argument("--species-offset", action="append",
                   help="ELEMENT=EV: move local energy between species of a mixture "
                   "(frame sums unchanged); repeat per element")
    p.set_defaults(func=_cmd_partition)

