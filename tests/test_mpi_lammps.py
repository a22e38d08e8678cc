"""The LAMMPS session under `mpirun -np 2`: domain decomposition and shared-out frames."""

from __future__ import annotations

import numpy as np
import pytest
from mpi_helpers import run_mpi

from toolkit.data import write_frames
from toolkit.descriptors import DescriptorSpec, compute_descriptors
from toolkit.reference.classical import evaluate_reference

pytestmark = pytest.mark.mpi


def test_two_ranks_equal_serial(tmp_path, arkr_atm_frames):
    write_frames(tmp_path / "frames.extxyz", arkr_atm_frames)
    run_mpi(
        """
        import numpy as np
        from toolkit.lammps import world_comm
        from toolkit.data import read_frames
        from toolkit.descriptors import DescriptorSpec, compute_descriptors
        from toolkit.reference.classical import evaluate_reference
        comm = world_comm()
        assert comm.Get_size() == 2
        frames = read_frames("frames.extxyz")
        d = compute_descriptors(frames, DescriptorSpec(), cache=False, progress=False, comm=comm)
        labelled = evaluate_reference(frames, "lj+atm", comm=comm)  # domain decomposition
        if comm.Get_rank() == 0:
            np.savez("mpi.npz", d=d.values,
                     e=[a.info["energy"] for a in labelled],
                     le=np.concatenate([a.arrays["local_energy"] for a in labelled]),
                     f=np.concatenate([a.arrays["forces"] for a in labelled]))
        """,
        tmp_path,
    )
    got = np.load(tmp_path / "mpi.npz")
    serial_d = compute_descriptors(arkr_atm_frames, DescriptorSpec(), cache=False,
                                   progress=False)
    serial = evaluate_reference(arkr_atm_frames, "lj+atm")
    np.testing.assert_array_equal(got["d"], serial_d.values)
    np.testing.assert_allclose(got["e"], [a.info["energy"] for a in serial], rtol=0, atol=1e-10)
    np.testing.assert_allclose(got["le"], np.concatenate([a.arrays["local_energy"]
                                                          for a in serial]), rtol=0, atol=1e-10)
    np.testing.assert_allclose(got["f"], np.concatenate([a.arrays["forces"] for a in serial]),
                               rtol=0, atol=1e-10)


def test_ranks_reading_different_files_get_their_own_frames(tmp_path, arkr_atm_frames):
    """ASE's reader is collective under MPI by default (rank 0 reads and broadcasts);
    a sweep rank that loads another system's file must still get that file's frames."""
    write_frames(tmp_path / "rank0.extxyz", arkr_atm_frames[:1])
    write_frames(tmp_path / "rank1.extxyz", arkr_atm_frames[1:3])
    out = run_mpi(
        """
        from toolkit.lammps import world_comm
        from toolkit.data import read_frames
        rank = world_comm().Get_rank()
        frames = read_frames(f"rank{rank}.extxyz")
        print(f"rank {rank}: {len(frames)} frames, energy {frames[0].info['energy']!r}")
        """,
        tmp_path,
    )
    assert f"rank 0: 1 frames, energy {arkr_atm_frames[0].info['energy']!r}" in out
    assert f"rank 1: 2 frames, energy {arkr_atm_frames[1].info['energy']!r}" in out
