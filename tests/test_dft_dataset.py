"""The shipped DFT reference set (datasets/dft/) is what its README and fit files say.

No CP2K here: these read the committed files and check them against each other, so a
regenerated or hand-edited set that breaks a promise (sums, the fit, the input structures,
the records) fails. The campaign that grows the set runs CP2K in tests/test_dft.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from toolkit.data import read_frames
from toolkit.errors import AetkError
from toolkit.reference.dft.campaign import LEGACY_TRAJECTORY, Campaign, structures

DATASET = Path(__file__).resolve().parents[1] / "datasets" / "dft"
SYSTEMS = [p.stem for p in sorted((DATASET / "records").glob("*.extxyz"))
           if (DATASET / f"{p.stem}.fit.json").is_file()]


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request):
    name = request.param
    return name, read_frames(DATASET / f"{name}.extxyz"), json.loads(
        (DATASET / f"{name}.fit.json").read_text())


def test_every_system_of_the_campaign_is_shipped():
    assert {"Ar32", "Kr32", "Ar16Kr16"} <= set(SYSTEMS)


def test_frames_are_the_records_made_from_the_shipped_structures(system):
    name, frames, info = system
    records = read_frames(DATASET / "records" / f"{name}.extxyz")
    inputs = {}
    for atoms in read_frames(DATASET / "structures" / f"{name}.extxyz"):
        key = (atoms.info.get("trajectory", LEGACY_TRAJECTORY),
               int(atoms.info.get("trajectory_frame", len(inputs))))
        inputs[key] = atoms
    # records may run ahead of the partitioned file while a campaign is running
    shipped_at_least = 200  # the campaign's target (issue 16), met at the 1,006-frame partition
    assert len(records) >= len(frames) >= shipped_at_least
    assert info["fit"]["n_frames"] == len(frames)
    by_key = {(r.info["trajectory"], int(r.info["trajectory_frame"])): r for r in records}
    for atoms in frames:
        record = by_key[(atoms.info["trajectory"], int(atoms.info["trajectory_frame"]))]
        assert len(atoms) == 32
        assert atoms.info["energy"] == record.info["energy"]
        np.testing.assert_array_equal(atoms.arrays["basin_energy"], record.arrays["basin_energy"])
        source = inputs[(atoms.info["trajectory"], int(atoms.info["trajectory_frame"]))]
        assert source.get_chemical_symbols() == atoms.get_chemical_symbols()
        np.testing.assert_allclose(atoms.positions, source.positions, atol=1e-8)
        np.testing.assert_allclose(atoms.cell.array, source.cell.array, atol=1e-8)


def test_local_energies_sum_to_the_dft_total_and_follow_the_stored_fit(system):
    _, frames, info = system
    slope, intercept = info["fit"]["slope"], info["fit"]["intercept"]
    for atoms in frames:
        local = atoms.arrays["local_energy"]
        assert abs(local.sum() - atoms.info["energy"]) < 1e-8
        assert abs(atoms.arrays["basin_energy"].sum() - atoms.info["electrostatic_energy"]) < 0.01
        expected = ((1.0 + slope) * atoms.arrays["basin_energy"] + intercept
                    + atoms.info["fit_residual"] / len(atoms))
        np.testing.assert_allclose(local, expected, atol=1e-8)
        assert np.all(np.abs(atoms.arrays["basin_electrons"] - 8.0) < 0.02)
        assert np.all(np.isfinite(atoms.arrays["forces"]))


def test_stored_fit_is_the_least_squares_line_of_the_frames(system):
    _, frames, info = system
    natoms = len(frames[0])
    x = np.array([a.info["electrostatic_energy"] for a in frames]) / natoms
    y = np.array([a.info["energy"] for a in frames]) / natoms - x
    design = np.column_stack([x - x.mean(), np.ones_like(x)])
    (slope, level), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ np.array([slope, level])
    assert slope == pytest.approx(info["fit"]["slope"], abs=1e-6)
    assert level - slope * x.mean() == pytest.approx(info["fit"]["intercept"], abs=1e-3)
    assert np.sqrt(np.mean(residual**2)) == pytest.approx(info["fit"]["rmse"], rel=1e-5)
    assert info["fit"]["rmse"] < 1.5e-3  # eV/atom; the README's table quotes the values


def test_pure_aligned_mixture_moves_energy_between_species_only():
    shared = read_frames(DATASET / "Ar16Kr16.extxyz")
    aligned = read_frames(DATASET / "Ar16Kr16.pure_aligned.extxyz")
    pure = {s: np.concatenate([a.arrays["local_energy"]
                               for a in read_frames(DATASET / f"{s}32.extxyz")]).mean()
            for s in ("Ar", "Kr")}
    for a, b in zip(shared, aligned, strict=True):
        assert a.info["energy"] == pytest.approx(b.info["energy"], abs=1e-9)
        assert b.arrays["local_energy"].sum() == pytest.approx(b.info["energy"], abs=1e-8)
        symbols = np.array(a.get_chemical_symbols())
        for s in ("Ar", "Kr"):  # a constant per species and frame
            shift = b.arrays["local_energy"][symbols == s] - a.arrays["local_energy"][symbols == s]
            assert np.ptp(shift) < 1e-9
    local = np.concatenate([a.arrays["local_energy"] for a in aligned])
    symbols = np.concatenate([a.get_chemical_symbols() for a in aligned])
    for s in ("Ar", "Kr"):
        # equal up to the per-frame centring that keeps the totals (1.2 meV here)
        assert local[symbols == s].mean() == pytest.approx(pure[s], abs=2e-3)


def test_campaign_trajectories_are_independent_and_regenerate_identically(tmp_path):
    campaign = Campaign(tmp_path, tmp_path / "work", systems=("Ar24Kr8",), target=4,
                        frames_per_trajectory=2)
    first = structures(campaign, "Ar24Kr8")
    assert list(first) == ["lj2.5s-s101", "lj2.5s-s102"]
    (tmp_path / "structures" / "Ar24Kr8.extxyz").unlink()
    again = structures(campaign, "Ar24Kr8")
    for name in first:
        for a, b in zip(first[name], again[name], strict=True):
            np.testing.assert_array_equal(a.positions, b.positions)
            assert a.get_chemical_symbols().count("Kr") == 8
    # two seeds, two melts: the first frames of the two trajectories are unrelated
    a, b = (first[name][0] for name in first)
    assert np.abs(a.positions - b.positions).max() > 1.0
    stored = read_frames(tmp_path / "structures" / "Ar24Kr8.extxyz")
    assert [(s.info["trajectory"], s.info["trajectory_frame"]) for s in stored] == [
        ("lj2.5s-s101", 0), ("lj2.5s-s101", 1), ("lj2.5s-s102", 0), ("lj2.5s-s102", 1)]


def _make_dataset():
    import importlib.util

    spec = importlib.util.spec_from_file_location("dft_make_dataset", DATASET / "make_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_are_the_committed_files(tmp_path):
    """datasets/dft/README.md shows exactly the tables `make_dataset.py --tables` renders from
    the records, fits, joint map, isolated atoms and cost; a changed number is caught."""
    make = _make_dataset()
    readme = (DATASET / "README.md").read_text()
    campaign = Campaign(DATASET, tmp_path / "work")
    tables = make.tables_markdown(campaign).split("\n\n")
    assert len(tables) >= 6
    for table in tables:
        assert table.strip() in readme, f"README.md lacks the table:\n{table}"
    # the same renderer on a copy with one slope changed: the README no longer matches
    copy = tmp_path / "dft"
    copy.mkdir()
    for path in DATASET.glob("*.fit.json"):
        (copy / path.name).write_text(path.read_text())
    info = json.loads((copy / "Kr32.fit.json").read_text())
    info["fit"]["slope"] += 0.001
    (copy / "Kr32.fit.json").write_text(json.dumps(info))
    assert make.fit_table(copy).strip() not in readme


def test_readme_slope_errors_are_least_squares_errors_of_the_frames(system):
    name, frames, _ = system
    natoms = len(frames[0])
    x = np.array([a.info["electrostatic_energy"] for a in frames]) / natoms
    y = np.array([a.info["energy"] for a in frames]) / natoms - x
    design = np.column_stack([x, np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    covariance = residual @ residual / (len(x) - 2) * np.linalg.inv(design.T @ design)
    stderr = _make_dataset().slope_stderr(DATASET / f"{name}.fit.json")
    assert stderr == pytest.approx(np.sqrt(covariance[0, 0]), rel=1e-4)


def test_slope_errors_allowing_for_correlated_frames_are_those_of_the_shipped_frames(system):
    """SYSTEM.fit.json's ``stderr``: the classical errors are the textbook ones above, the
    Newey-West ones are recomputed from the frames' trajectories and positions."""
    from toolkit.reference.local_energy import correlation_stderr

    name, frames, _ = system
    natoms = len(frames[0])
    total = np.array([a.info["energy"] for a in frames])
    electrostatic = np.array([a.info["electrostatic_energy"] for a in frames])
    stored = json.loads((DATASET / f"{name}.fit.json").read_text())["stderr"]
    again = correlation_stderr(total, electrostatic, natoms,
                               [a.info["trajectory"] for a in frames],
                               [a.info["trajectory_frame"] for a in frames])
    assert stored == pytest.approx(again, rel=1e-9)
    assert stored["slope_classical"] == pytest.approx(
        _make_dataset().slope_stderr(DATASET / f"{name}.fit.json"), rel=1e-6)
    # the shipped frames are close to independent: the two differ by less than a quarter
    assert 0.75 < stored["slope_newey_west"] / stored["slope_classical"] < 1.25


def test_joint_map_errors_are_least_squares_errors_of_the_shipped_frames():
    """joint/joint.fit.json's standard errors, recomputed by another route (QR of the
    column-scaled design) from the frames of joint/: the normal equations' pseudo-inverse
    once returned errors 2.5x too small for Ar."""
    joint = json.loads((DATASET / "joint" / "joint.fit.json").read_text())["joint"]
    elements = sorted(joint["slopes"])
    rows, target = [], []
    for path in sorted((DATASET / "joint").glob("*.extxyz")):
        for atoms in read_frames(path):
            symbols = np.array(atoms.get_chemical_symbols())
            n = len(symbols)
            basins = atoms.arrays["basin_energy"]
            rows.append([basins[symbols == e].sum() / n for e in elements]
                        + [np.sum(symbols == e) / n for e in elements])
            target.append((atoms.info["energy"] - atoms.info["electrostatic_energy"]) / n)
    design, target = np.array(rows), np.array(target)
    assert len(target) == joint["n_frames"]
    norms = np.linalg.norm(design, axis=0)
    q, r = np.linalg.qr(design / norms)
    coefficients = np.linalg.solve(r, q.T @ target) / norms
    residual = target - design @ coefficients
    r_inv = np.linalg.inv(r)
    stderr = np.sqrt(np.sum(r_inv**2, axis=1) * (residual @ residual)
                     / (len(target) - len(coefficients))) / norms
    k = len(elements)
    for i, e in enumerate(elements):
        assert joint["slopes"][e] == pytest.approx(coefficients[i], abs=1e-9)
        assert joint["slope_stderr"][e] == pytest.approx(stderr[i], rel=1e-4), e
        assert joint["intercept_stderr"][e] == pytest.approx(stderr[k + i], rel=1e-4), e
        assert 0.75 < joint["slope_stderr_newey_west"][e] / joint["slope_stderr"][e] < 1.25


def test_write_tables_replaces_each_table_by_its_header(tmp_path):
    """`--write-tables` puts the rendered tables in place of the README's stale ones and keeps
    the prose; the README's own tables written back change nothing; headers match whole
    lines only; a rendered block that is not a table is refused."""
    make = _make_dataset()
    readme = (DATASET / "README.md").read_text()
    tables = make.tables_markdown(Campaign(DATASET, tmp_path / "work")).split("\n\n")
    own = []  # the README's table under each rendered header, as it stands
    for table in tables:
        lines = readme[readme.index(table.splitlines()[0] + "\n"):].split("\n")
        own.append("\n".join(lines[:next(k for k, x in enumerate(lines) if not x.startswith("|"))]))
    same, count = make.replace_tables(readme, "\n\n".join(own))
    assert same == readme and count == len(tables) >= 6
    stale = "intro\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\nprose after\n"
    fresh = "| a | b |\n|---|---|\n| 5 | 6 |\n"
    text, count = make.replace_tables(stale, fresh)
    assert count == 1
    assert text == "intro\n\n| a | b |\n|---|---|\n| 5 | 6 |\n\nprose after\n"
    with pytest.raises(AetkError, match="0 tables headed"):
        make.replace_tables(stale, "| x | y |\n|---|---|\n| 1 | 2 |\n")
    with pytest.raises(AetkError, match="2 tables headed"):
        make.replace_tables(stale + stale, fresh)
    # a header inside a longer line is not that header
    with pytest.raises(AetkError, match="0 tables headed"):
        make.replace_tables("| z | a | b |\n|---|---|---|\n", fresh)
    with pytest.raises(AetkError, match="not a markdown table"):
        make.replace_tables(stale, "caption\n| a | b |\n|---|---|\n")


def test_dft_doc_cost_table_is_the_committed_cost():
    """docs/dft.md's campaign cost table is the one rendered from cost.json (it once kept an
    older partition's table); a changed mean is caught."""
    make = _make_dataset()
    doc = (DATASET.parents[1] / "docs" / "dft.md").read_text()
    table = make.cost_table(DATASET).strip()
    assert table in doc
    changed = re.sub(r"\| (\d+) \(", lambda m: f"| {int(m.group(1)) + 1} (", table, count=1)
    assert changed != table and changed not in doc


def test_paper_size_runs_are_summarised_with_the_shipped_maps():
    """datasets/dft/paper_size/: each Ar108 frame's map errors are what the shipped Ar32 and
    joint maps give from its energies (a repartition that changes the maps makes these
    files stale, and this fails until `summarise.py` is rerun), the Bader partition found
    108 basins holding the 864 valence electrons, and the repeat of frame 0 on two ranks
    gives the first run's energies."""
    paper = DATASET / "paper_size"
    joint = json.loads((DATASET / "joint" / "joint.fit.json").read_text())["joint"]
    maps = {"Ar32": json.loads((DATASET / "Ar32.fit.json").read_text())["fit"],
            "joint": {"slope": joint["slopes"]["Ar"], "intercept": joint["intercepts"]["Ar"]}}
    first = json.loads((paper / "Ar108.json").read_text())
    run = json.loads((paper / "Ar108_frames.json").read_text())
    frames = [first] + run["frames"]
    assert len(run["frames"]) == 3 and run["ranks"] == 2 and first["ranks"] == 1
    for frame in frames:
        n = frame["natoms"]
        assert n == frame["n_basins"] == frame["basin_checks"]["n_maxima"] == 108
        assert frame["basin_checks"]["electrons_grid"] == pytest.approx(864, abs=0.01)
        assert frame["basin_checks"]["max_attractor_distance_A"] < 0.1
        for name, fit in maps.items():
            predicted = (1.0 + fit["slope"]) * frame["E_es_eV"] + n * fit["intercept"]
            error = 1e3 * (predicted - frame["E_total_eV"]) / n
            assert frame["maps"][name]["error_meV_per_atom"] == pytest.approx(error, abs=1e-9)
            assert abs(error) < 2.0  # within a few times the maps' RMSE on 32-atom frames
    errors = {name: [f["maps"][name]["error_meV_per_atom"] for f in run["frames"]]
              for name in maps}
    for name, values in errors.items():
        assert run["map_errors_meV_per_atom"][name] == pytest.approx(
            {"min": min(values), "max": max(values), "mean": float(np.mean(values))})
    again = run["frame0_against_first_run"]
    assert again["E_total_difference_meV_per_atom"] == pytest.approx(
        1e3 * (run["frames"][0]["E_total_eV"] - first["E_total_eV"]) / 108)
    assert abs(again["E_total_difference_meV_per_atom"]) < 0.01  # the same frame, 1 vs 2 ranks
