"""Frames I/O and bad input: each problem gets one clear error naming file, frame and fix."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from toolkit.data import FrameError, read_frames, split_frames, validate_frames, write_frames


def test_round_trip_is_exact_and_stable(tmp_path, arkr_lj_frames):
    path = tmp_path / "f.extxyz"
    write_frames(path, arkr_lj_frames)
    back = read_frames(path)
    for a, b in zip(arkr_lj_frames, back, strict=True):
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.arrays["local_energy"], b.arrays["local_energy"])
        assert np.array_equal(a.arrays["forces"], b.arrays["forces"])
        assert a.info["energy"] == b.info["energy"]
        assert np.array_equal(a.info["stress"], b.info["stress"])
    write_frames(tmp_path / "g.extxyz", back)
    assert path.read_bytes() == (tmp_path / "g.extxyz").read_bytes()


def test_ase_reads_the_files_too(tmp_path, arkr_lj_frames):
    import ase.io

    write_frames(tmp_path / "f.extxyz", arkr_lj_frames[:1])
    atoms = ase.io.read(tmp_path / "f.extxyz")
    assert abs(atoms.get_potential_energy() - arkr_lj_frames[0].info["energy"]) < 1e-12


def _broken(frames, how):
    atoms = frames[1].copy()
    atoms.info.update(frames[1].info)
    if how == "energy":
        del atoms.info["energy"]
    elif how == "element":
        atoms.symbols[3] = "Xe"
    elif how == "nan":
        atoms.positions[5, 1] = np.nan
    elif how == "overlap":
        atoms.positions[7] = atoms.positions[8] + 0.2
    elif how == "small-box":
        atoms.set_cell(atoms.cell.array * 0.6, scale_atoms=True)
    elif how == "sum":
        atoms.arrays["local_energy"] = atoms.arrays["local_energy"] + 0.01
    return [frames[0], atoms]


@pytest.mark.parametrize(
    "how, message",
    [
        ("energy", "frame 1: no total energy"),
        ("element", "frame 1: unknown element"),
        ("nan", "frame 1: atom 5 has a NaN"),
        ("overlap", "frame 1: atoms 7 and 8"),
        ("small-box", "shorter than twice the cutoff"),
        ("sum", "frame 1: local energies sum to"),
    ],
)
def test_bad_frames_are_named(how, message, arkr_lj_frames):
    frames = _broken(arkr_lj_frames, how)
    with pytest.raises(FrameError, match=message) as info:
        validate_frames(frames, "x.extxyz", require=("energy", "local_energy"), cutoff=5.8)
    assert "x.extxyz" in str(info.value)


@pytest.mark.parametrize("field, where", [
    ("forces", "per-atom 'forces' of atom 4"),
    ("local_energy", "per-atom 'local_energy' of atom 4"),
    ("charges", "per-atom 'charges' of atom 4"),  # any per-atom column ASE knows ...
    ("weight", "per-atom 'weight' of atom 4"),  # ... or does not
    ("stress", "stress="),
    ("energy", "energy="),
    ("temperature", "temperature="),  # any info number
])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_every_number_a_frame_carries_is_checked_for_nan_and_inf(field, where, bad, tmp_path,
                                                                 arkr_lj_frames):
    """Written to a file and read back, as a user's data would be; named by file, frame and
    field, whether or not the field is required."""
    frames = [a.copy() for a in arkr_lj_frames[:3]]  # copies of info and arrays too
    for atoms in frames:
        atoms.arrays["charges"] = np.zeros(len(atoms))
        atoms.arrays["weight"] = np.ones(len(atoms))
        atoms.info["temperature"] = 120.0
    target = frames[2]
    if field in target.arrays:
        target.arrays[field][4] = bad
    elif field == "stress":
        target.info["stress"] = target.info["stress"].copy()
        target.info["stress"][1] = bad
    else:
        target.info[field] = bad
    path = tmp_path / "bad.extxyz"
    write_frames(path, frames)
    validate_frames(read_frames(path)[:2], path)  # the good frames pass
    with pytest.raises(FrameError, match=f"bad.extxyz, frame 2: {where}.*recompute this frame"):
        validate_frames(read_frames(path), path, require=())


def test_fit_refuses_nan_labels_in_one_line(tmp_path, arkr_lj_frames, capsys):
    """`aetk fit` (the CLI, in this process) on frames whose local energies hold a NaN: one
    line naming file, frame and field, exit status 2, no potential."""
    from toolkit.cli import main

    frames = [a.copy() for a in arkr_lj_frames]
    frames[3].arrays["local_energy"][0] = np.nan
    write_frames(tmp_path / "nan.extxyz", frames)
    status = main(["fit", "--data", str(tmp_path / "nan.extxyz"), "--hidden", "2",
                   "--max-iterations", "3", "--out", str(tmp_path / "pot"), "--quiet"])
    stderr = capsys.readouterr().err
    assert status == 2, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert "nan.extxyz, frame 3: per-atom 'local_energy' of atom 0" in stderr
    assert not (tmp_path / "pot").exists()


def test_fit_names_undefined_scores_instead_of_printing_nan_silently(tmp_path,
                                                                    arkr_lj_frames, capsys):
    """Six frames leave one test frame: its total R2 is undefined (no spread); the CLI says
    so on stderr rather than printing NaN among the scores without a word."""
    from toolkit.cli import main

    write_frames(tmp_path / "six.extxyz", arkr_lj_frames)
    status = main(["fit", "--data", str(tmp_path / "six.extxyz"), "--hidden", "2",
                   "--max-iterations", "3", "--out", str(tmp_path / "pot"), "--quiet",
                   "--no-wall"])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "NaN" in out.out  # the score itself
    assert "warning: total.r2 is undefined: the reference values of the test frames do " \
        "not vary" in out.err
    assert "local_r2" not in out.err  # the defined scores are not flagged


def test_unreadable_file_is_one_line_error_in_cli(tmp_path):
    bad = tmp_path / "bad.extxyz"
    bad.write_text("108\nnot an extxyz header\nAr 1 2\n")
    result = subprocess.run([sys.executable, "-m", "toolkit.cli", "descriptors", "--data",
                             str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(bad) in result.stderr and "error" in result.stderr


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FrameError, match="no such file"):
        read_frames(tmp_path / "nope.extxyz")


def test_split_is_fixed_by_seed_and_disjoint():
    a, b, c = split_frames(50, seed=3), split_frames(50, seed=3), split_frames(50, seed=4)
    assert a.as_dict() == b.as_dict() and a.as_dict() != c.as_dict()
    together = np.concatenate([a.train, a.validation, a.test])
    assert sorted(together.tolist()) == list(range(50))
    assert len(a.test) == 10 and len(a.validation) == 5


def test_trajectory_split_keeps_test_trajectories_out_of_training(tmp_path):
    from toolkit.data import FrameError, make_split, split_by_trajectory

    labels = [f"t{k % 4}" for k in range(40)]
    for seed in range(5):
        split = split_by_trajectory(labels, seed)
        test = {labels[i] for i in split.test}
        seen = {labels[i] for i in np.concatenate([split.train, split.validation])}
        assert len(test) == 1 and not test & seen  # 10 of 40 frames: one trajectory
        assert sorted(np.concatenate([split.train, split.validation, split.test])) == list(
            range(40))
    with pytest.raises(FrameError, match="needs more than one"):
        split_by_trajectory(["a"] * 10, 0)
    # one big trajectory and small ones: the big one is never the test set
    lopsided = ["big"] * 50 + ["s1", "s2", "s3", "s4"] * 10
    for seed in range(10):
        split = split_by_trajectory(lopsided, seed)
        assert "big" not in {lopsided[i] for i in split.test} and len(split.test) >= 10
    from ase import Atoms

    frames = [Atoms("Ar", positions=[[0, 0, 0]], cell=[5, 5, 5], pbc=True) for _ in range(4)]
    with pytest.raises(FrameError, match="trajectory= label"):
        make_split(frames, 0, "trajectory", "x.extxyz")


def test_shipped_dft_frames_split_by_trajectory_into_a_meta_json(tmp_path):
    """The campaign's frames carry trajectory labels; a fit records the held-out ones."""
    import json
    from pathlib import Path

    from toolkit.data import read_frames, write_frames
    from toolkit.models.fitting import FitConfig, fit_potential
    from toolkit.models.training import TrainingSettings

    shipped = Path(__file__).resolve().parents[1] / "datasets" / "dft" / "Ar32.extxyz"
    frames = read_frames(shipped)
    if len({a.info["trajectory"] for a in frames}) < 2:
        pytest.skip("the shipped Ar32 set has one trajectory so far")
    write_frames(tmp_path / "ar.extxyz", frames)
    config = FitConfig(tmp_path / "ar.extxyz", (2,), "tanh", split_mode="trajectory",
                       training=TrainingSettings(max_iterations=5, patience=5), wall=False)
    potential, _ = fit_potential(config, tmp_path / "pot", progress=False)
    meta = json.loads((potential.directory / "meta.json").read_text())["data"]
    assert meta["split_mode"] == "trajectory"
    held_out = set(meta["test_trajectories"])
    trained = {frames[i].info["trajectory"] for i in meta["split"]["train"]
               + meta["split"]["validation"]}
    assert held_out and not held_out & trained
