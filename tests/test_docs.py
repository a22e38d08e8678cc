"""Numbers in the README have a file behind them: the benchmark table is exactly the one
`benchmarks/run.py --readme` renders from the committed benchmarks/results.json (the test
count is checked against a real collection in test_packaging.py)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_script(name: str, path: Path):
    """A script (not a package module) as a module, registered under ``name`` in sys.modules
    (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load_script("bench_run", ROOT / "benchmarks" / "run.py")


def test_readme_benchmark_table_is_the_committed_results_file(bench):
    readme = (ROOT / "README.md").read_text()
    results_path = ROOT / "benchmarks" / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else None
    assert readme.count(bench.TABLE_START) == readme.count(bench.TABLE_END) == 1
    assert bench.readme_with_table(readme, results) == readme, (
        "README's benchmark table differs from benchmarks/results.json: run "
        "`python benchmarks/run.py --readme` (or `make bench`)")
    if results is not None:
        assert not results.get("quick"), "a --quick run is not a figure; rerun make bench"
        assert {"cpu_model", "cores", "load_average_1_5_15_min_at_start", "git_commit",
                "versions"} <= set(results["machine"])


def test_table_shows_each_measured_number_and_a_changed_file_is_caught(bench):
    results = {
        "machine": {"cpu_model": "Test CPU", "cores": 2,
                    "load_average_1_5_15_min_at_start": [0.1, 0.2, 0.3],
                    "git_commit": "0123456789abcdef", "date": "2026-11-26T00:00:00"},
        "descriptors": {"twojmax6": {"atoms_per_s": 26012.4}, "twojmax8": {"atoms_per_s": 14789.0},
                        "cost_ratio_8_over_6": 1.7589},
        "md": {"atoms_108": {"nn_wall": {"ns_per_day": 39.61}, "nn_bare": {"ns_per_day": 40.2},
                             "linear_snap_wall": {"ns_per_day": 64.3},
                             "linear_snap_bare": {"ns_per_day": 66.0},
                             "lj": {"ns_per_day": 22400.0}}},
        "batched_vs_one_by_one": {"w1": {"speedup_cpu": 2.8204, "speedup_wall": 2.87},
                                  "w64": {"speedup_cpu": 1.2434, "speedup_wall": 1.27},
                                  "load_average_at_start": [2.0, 2.0, 4.4]},
    }
    text = bench.table_markdown(results)
    assert "(speed-up, CPU time) | 2.82x (w1), 1.24x (w64) |" in text
    assert "26,000 atoms/s (twojmax 6), 14,800 atoms/s (twojmax 8): twojmax 8 costs 1.76x" \
        in text
    assert "| MD, 108 atoms, ns/day: NN / linear SNAP, with walls; bare; LJ | 39.6 / 64.3; " \
        "40.2 / 66; 22,400 |" in text
    assert "Test CPU, 2 cores, load average 0.10, 0.20, 0.30" in text
    readme = f"before\n{bench.TABLE_START}\nold\n{bench.TABLE_END}\nafter\n"
    current = bench.readme_with_table(readme, results)
    assert current.startswith("before\n") and current.endswith("\nafter\n")
    assert bench.readme_with_table(current, results) == current
    results["descriptors"]["cost_ratio_8_over_6"] = 2.3  # the number drifts: caught
    assert bench.readme_with_table(current, results) != current
    assert "No benchmark results" in bench.table_markdown({**results, "quick": True})


def test_paper_regime_speedup_bound_is_the_committed_bench():
    """docs/paper_regime.md's argument for the unmet 5x target quotes the evaluation ratios,
    the commit, the width-1 speed-up and the width-16 bound (matmul peak and tanh time) of
    the committed bench run; a rerun of the bench that changes them fails here until the
    paragraph is updated."""
    doc = (ROOT / "docs" / "paper_regime.md").read_text()
    entry = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    b = entry["batched_vs_one_by_one"]
    ratios = ", ".join(f"{b[k]['evaluation_ratio']:.2f} ({k})" for k in ("w1", "w4", "w16"))
    paragraph = " ".join(doc[doc.index("**Issue 14's target"):].split("\n\n")[0].split())
    assert f"E5/E1 = {ratios}, {b['w64']['evaluation_ratio']:.2f} (w64)" in paragraph
    assert f"commit {b['measured_with_commit'][:7]}" in paragraph
    assert f"(width 1: {b['w1']['speedup_cpu']:.1f}x in the same run)" in paragraph
    assert f"down to {b['w16']['evaluation_ratio']:.1f}x" in paragraph
    assert f"E5/E1 = {b['w1']['evaluation_ratio'] + 0.01:.2f} (w1)" not in paragraph
    # the arithmetic bound at width 16: the bench's flop count at its measured matmul peak
    bench = _load_script("bench_run", ROOT / "benchmarks" / "run.py")
    from toolkit.models.networks import Architecture

    g = entry["training_gflops"]
    flop = bench._layer_flops(Architecture((16,), "tanh"), 30, 5, g["atoms"])
    peak = g["matmul_peak_gflops_1thread"]
    one, five = (b["w16"][f"evaluation_{n}_cpu_s"] for n in ("1_member", "5_members"))
    floor = flop / (peak * 1e9)
    tanh = b["w16"]["tanh_5_members_cpu_s"]
    assert g["measured_with_commit"] == b["measured_with_commit"]  # one run, one load
    assert b["w16"]["tanh_elements"] == 5 * 16 * g["atoms"]
    # what the paragraph says: the members' matrix arithmetic at peak plus their tanh come
    # to about one member's whole evaluation (either alone to about half)
    assert floor < one and tanh < one and 0.9 * one < floor + tanh
    assert (f"({flop / 1e9:.3f} GFLOP on the bench's {g['atoms']:,} atoms" in paragraph
            and f"would take {floor * 1e3:.1f} ms at this machine's one-thread matmul peak "
            f"({peak:.1f} GFLOP/s" in paragraph
            and f"takes {tanh * 1e3:.1f} ms even in cache" in paragraph
            and f"together {(floor + tanh) * 1e3:.1f} ms against one member's whole "
                f"evaluation ({one * 1e3:.1f} ms;" in paragraph
            and f"runs at {flop / 5 / one / 1e9:.1f} GFLOP/s, five members' at "
                f"{flop / five / 1e9:.1f})" in paragraph), paragraph


def test_reference_points_tables_are_the_committed_results():
    """docs/reference_points.md shows exactly the tables `aetk points report` renders from
    results/reference_points/ (no placeholder left, no hand-edited number)."""
    from toolkit.studies import reference_points as study

    doc = (ROOT / "docs" / "reference_points.md").read_text()
    results = ROOT / "results" / "reference_points"
    tables = {
        "lj_results.csv": study.lj_markdown(study.read_table(results / "lj_results.csv")),
        "bond_search.json": study.search_markdown(
            json.loads((results / "bond_search.json").read_text())),
        "grid_results.csv": study.grid_markdown(
            study.read_table(results / "grid_results.csv"),
            json.loads((results / "grid.json").read_text())),
        "cost.json": study.cost_markdown(json.loads((results / "cost.json").read_text())),
    }
    for name, table in tables.items():
        assert table in doc, f"docs/reference_points.md: the table from {name} differs"
        assert table in (results / "tables.md").read_text()
    for placeholder in ("_TABLE", "_TEXT", "PLACEHOLDER"):
        assert placeholder not in doc
    for figure in ("points_lj_width.png", "points_lj_bonds.png", "points_dft_grid.png"):
        assert f"figures/{figure}" in doc and (ROOT / "docs" / "figures" / figure).is_file()


def test_invariant_points_tables_are_the_committed_report():
    """docs/invariant_points.md shows exactly the tables `scripts/invariant_study.py report`
    renders from docs/invariant_points.json, names every command the report lists as not run,
    and has no placeholder left."""
    study = _load_script("invariant_study", ROOT / "scripts" / "invariant_study.py")
    doc = (ROOT / "docs" / "invariant_points.md").read_text()
    report = json.loads((ROOT / "docs" / "invariant_points.json").read_text())
    rendered = study.tables_markdown(report)
    blocks = [block.partition("\n\n") for block in rendered.split("### ")[1:]]
    assert blocks
    for title, _, body in blocks:
        assert body.strip() in doc, f"docs/invariant_points.md: the table {title!r} differs"
    assert report["complete"] == (not report["missing"])
    for missing in report["missing"]:
        assert missing["command"] in doc
    if not report["complete"]:
        assert "The study is incomplete" in doc
    assert "\nSTUDY\n" not in doc + "\n" and "PLACEHOLDER" not in doc
    for figure in ("invariant_si_training.png", "invariant_ar_training.png",
                   "invariant_rank.png"):
        assert f"figures/{figure}" in doc and (ROOT / "docs" / "figures" / figure).is_file()


def test_paper_regime_tables_are_the_committed_results():
    """docs/paper_regime.md shows exactly the tables `aetk report --compare` renders from
    results/paper_regime/, and the speed figures of results/paper_regime/speed.json."""
    from toolkit.studies.regime import paired_table, width_table
    from toolkit.studies.sweep import read_results

    doc = (ROOT / "docs" / "paper_regime.md").read_text()
    results = ROOT / "results" / "paper_regime"
    protocols = {label: read_results(results / f"protocol_{label}")
                 for label in ("lbfgs", "adam4", "adam32")}
    for metric, file in (("local_r2_aligned", "comparison.md"), ("total_r2", "comparison.md"),
                         ("local_r2", "comparison_local_r2.md")):
        table = width_table(protocols, metric, ["Ar", "ArKr"])
        assert table in doc, f"docs/paper_regime.md: the {metric} table differs"
        assert table in (results / file).read_text()
    stored = {name: read_results(results / f"precision_{name}") for name in ("float32", "fixed16")}
    precision = paired_table({"float64-frames": protocols["lbfgs"],
                              "float32-bundle": stored["float32"],
                              "fixed16-bundle": stored["fixed16"]},
                             ["local_r2_aligned", "total_r2"])
    assert "| fixed16-bundle | 15 |" in precision  # every member of the fixed16 run is paired
    assert precision in doc and precision in (results / "comparison_precision.md").read_text()
    means = width_table({"float64-frames": protocols["lbfgs"], "float32-bundle": stored["float32"],
                         "fixed16-bundle": stored["fixed16"]}, "local_r2_aligned", ["Ar", "ArKr"])
    assert means in (results / "comparison_precision.md").read_text()
    for width, cells in ((1, "0.944 / 0.939 / 0.947"), (4, "0.923 / 0.916 / 0.915"),
                         (256, "0.870 / 0.868 / 0.871")):  # quoted in the prose
        row = next(line for line in means.splitlines() if line.startswith(f"| {width} | "))
        arkr = row.strip(" |").split(" | ")[2:]  # width, float64 Ar, then the three ArKr columns
        assert [c.split(" ±")[0] for c in arkr] == cells.split(" / "), width
        assert f"{cells} at width {width}" in " ".join(doc.split()), width
    speed = json.loads((results / "speed.json").read_text())
    assert speed["machine"]["cpu_model"] and speed["machine"]["cores"]
    gflops = speed["training_gflops"]
    assert f"**{gflops['matmul_peak_gflops_1thread']:.1f} GFLOP/s**" in doc
    for width in (64, 128, 256, 500):
        one, two = (gflops[f"tanh_{width}"], gflops[f"tanh_{width}x{width}"])
        row = next(line for line in doc.splitlines()
                   if line.startswith(f"| {width} | ") and " % |" in line)
        for numbers in (one, two):
            assert (f"| {numbers['cpu_gflops']:.1f} | "
                    f"{100 * numbers['cpu_fraction_of_peak']:.0f} % |") in row
    for key, row in speed["batched_vs_one_by_one"].items():
        if key.startswith("w"):
            assert f"| {row['speedup_cpu']:.2f} | {row['speedup_wall']:.2f} |" in doc
    bundles = json.loads((ROOT / "benchmarks" / "results.json").read_text())["bundle_sizes"]
    for precision in ("float64", "float32", "fixed16"):
        assert f"| {precision} | {bundles[precision]['mib']['Ar']:.1f} |" in doc
    for placeholder in ("SPEED-RESULTS", "RESULTS-PLACEHOLDER", "PRECISION-TABLE",
                        "BUNDLE-SIZES"):
        assert placeholder not in doc
    for figure in ("local_r2_aligned", "total_r2", "local_r2"):
        name = f"paper_regime_{figure}.png"
        assert f"figures/{name}" in doc and (ROOT / "docs" / "figures" / name).is_file()


def test_dft_doc_sweep_tables_are_the_committed_results():
    """docs/dft.md ("What the toolkit learns") shows exactly the tables
    `scripts/dft_regime_tables.py` renders from results/dft_regime/ (also in its tables.md)."""
    tables_script = _load_script("dft_regime_tables", ROOT / "scripts" / "dft_regime_tables.py")
    doc = (ROOT / "docs" / "dft.md").read_text()
    results = ROOT / "results" / "dft_regime"
    committed = (results / "tables.md").read_text()
    tables = tables_script.render(results)
    shown = [t for t in tables if not t.startswith("transfer")] + [
        t for t in tables if t.startswith("transfer")
        and any(m in t for m in ("local_r2_aligned", "local_r2_gauge"))]
    assert {"split", "best iteration", "sweep local_r2_gauge tanh",
            "summary local_r2_aligned", "summary local_r2_gauge"} <= set(shown)
    # the summary's claim: the wide bands against the narrow ones, per activation
    from toolkit.studies.regime import group_metric
    from toolkit.studies.sweep import read_results

    rows = read_results(results / "results.csv")
    shifts = {act: [tables_script.band_shift(group_metric(
        [r for r in rows if (r["system"], r["activation"]) == (s, act)], "local_r2_aligned",
        [])[()]) for s in tables_script.SYSTEMS] for act in ("linear", "tanh")}
    flat = " ".join(doc.split())
    assert (f"widths 128-500 score {min(shifts['linear']):+.3f} to {max(shifts['linear']):+.3f} "
            f"against widths 1-16 with linear networks and {min(shifts['tanh']):+.3f} to "
            f"{max(shifts['tanh']):+.3f} with tanh") in flat
    for title in tables:
        assert tables[title] in committed, f"results/dft_regime/tables.md: {title!r} differs"
    for title in shown:
        assert tables[title] in doc, f"docs/dft.md: the table {title!r} differs"
    for placeholder in ("TRANSFER-RESULTS", "PLACEHOLDER"):
        assert placeholder not in doc
    for figure in re.findall(r"\(figures/(dft_regime_[a-z0-9_]+\.png)\)", doc):
        assert (ROOT / "docs" / "figures" / figure).is_file(), figure
    assert "figures/dft_regime_" in doc


def test_dft_doc_fit_joint_and_isolated_tables_are_the_committed_files():
    """docs/dft.md's Fig. 1, joint-map and isolated-atom tables hold the numbers of
    datasets/dft/*.fit.json, joint/joint.fit.json and isolated.json."""
    dataset = ROOT / "datasets" / "dft"
    make = _load_script("dft_make_dataset", dataset / "make_dataset.py")
    doc = (ROOT / "docs" / "dft.md").read_text()
    for system in ("Ar32", "Kr32", "Ar16Kr16", "Ar24Kr8", "Ar8Kr24"):
        info = json.loads((dataset / f"{system}.fit.json").read_text())
        fit, honest = info["fit"], info["total_against_electrostatic"]
        assert (f"| {system} | {fit['n_frames']} | {1e3 * fit['rmse']:.2f} | {fit['r2']:.4f} | "
                f"{honest['r2']:.4f} |") in doc, system
        label = f"{system} alone" + (" (one slope)" if "Kr" in system and "Ar" in system else "")
        stderr = make.slope_stderr(dataset / f"{system}.fit.json")
        assert (f"| {label} | {fit['slope']:.4f} ± {stderr:.4f} | {fit['intercept']:.3f} |"
                in doc), system
    joint = json.loads((dataset / "joint" / "joint.fit.json").read_text())["joint"]
    # the prose on errors that allow for correlated frames, and the slopes' differences
    flat = " ".join(doc.split())
    errors = {s: json.loads((dataset / f"{s}.fit.json").read_text())["stderr"]
              for s in ("Ar32", "Kr32", "Ar16Kr16", "Ar24Kr8", "Ar8Kr24")}
    ratios = [e["slope_newey_west"] / e["slope_classical"] for e in errors.values()] + [
        joint["slope_stderr_newey_west"][s] / joint["slope_stderr"][s] for s in ("Ar", "Kr")]
    assert f"scales the slopes' errors by {min(ratios):.2f}-{max(ratios):.2f}" in flat
    for s, own in (("Ar", "Ar32"), ("Kr", "Kr32")):
        slope = json.loads((dataset / f"{own}.fit.json").read_text())["fit"]["slope"]
        gap = abs(slope - joint["slopes"][s])
        plain = gap / np.hypot(errors[own]["slope_classical"], joint["slope_stderr"][s])
        robust = gap / np.hypot(errors[own]["slope_newey_west"],
                                joint["slope_stderr_newey_west"][s])
        assert (f"{plain:.1f} combined standard errors ({robust:.1f} with the Newey-West "
                f"errors") in flat, s
    for s in ("Ar", "Kr"):
        assert (f"| joint {s} | {joint['slopes'][s]:.4f} ± {joint['slope_stderr'][s]:.4f} | "
                f"{joint['intercepts'][s]:.2f} ± {joint['intercept_stderr'][s]:.2f} |") in doc
    for element, entry in json.loads((dataset / "isolated.json").read_text()).items():
        maps = entry["maps"]
        own = f"{element}32"
        assert (f"| {element} | {entry['E_total_eV']:.4f} | {entry['E_es_eV']:.4f} | "
                f"{maps[own]['predicted_minus_E_total_eV']:+.4f} ({own}) | "
                f"{maps['Ar16Kr16']['predicted_minus_E_total_eV']:+.4f} | "
                f"{maps['joint']['predicted_minus_E_total_eV']:+.4f} |") in doc, element


def test_identifiability_sweep_tables_are_the_committed_results():
    """docs/identifiability.md section 6 shows exactly the tables `scripts/
    identifiability_study.py sweeps` renders from the committed member tables of
    results/identifiability/ (sweep_summary.csv is those tables' summary), names the resume
    command of every sweep with widths that did not run, and shows the figures it draws."""
    from toolkit.tables import table_text

    study = _load_script("identifiability_study", ROOT / "scripts" / "identifiability_study.py")
    results = ROOT / "results" / "identifiability"
    section = (ROOT / "docs" / "identifiability.md").read_text().split("\n## 6. ")[1]
    summary = study.summary_rows()
    assert {row["sweep"] for row in summary} == set(study.SWEEPS)
    assert table_text(summary, study.SUMMARY_TABLE_COLUMNS) == (
        results / "sweep_summary.csv").read_text(), (
        "sweep_summary.csv differs from the member tables: run "
        "`python scripts/identifiability_study.py sweeps`")

    def tables(text):
        blocks, current = [], []
        for line in text.splitlines() + [""]:
            if line.startswith("|"):
                current.append(line)
            elif current:
                blocks.append("\n".join(current))
                current = []
        return blocks

    rendered = tables(study.summary_markdown(summary))
    assert len(rendered) == 3 * len(study.SWEEPS)  # scores, LPR, along training
    for table in rendered:
        assert table in section, f"docs/identifiability.md section 6: a table differs:\n{table}"
    for name in study.SWEEPS:
        meta = json.loads((results / f"{name}.json").read_text())
        assert meta["complete"] == (not meta["missing_cells"])
        if not meta["complete"]:
            assert meta["command"] in section
    summary[0]["local_r2_aligned_mean"] += 0.01  # a changed number is caught
    assert any(table not in section for table in tables(study.summary_markdown(summary)))
    for names in study.FIGURES.values():
        for name in names.values():
            figure = f"identifiability_{name}.png"
            assert f"figures/{figure}" in section
            assert (ROOT / "docs" / "figures" / figure).is_file()


def test_dft_doc_early_stopping_tables_are_the_committed_results():
    """docs/dft.md shows the early-stopping against last-parameters tables exactly as
    `toolkit.studies.regime.width_table` renders them from results/dft_regime{,_last}/, and
    states the mixture's fall without early stopping, and where it lies, as stored."""
    from toolkit.studies.regime import group_metric, width_table
    from toolkit.studies.sweep import read_results

    doc = (ROOT / "docs" / "dft.md").read_text()
    stopped = [r for r in read_results(ROOT / "results" / "dft_regime")
               if r["system"] in ("Ar", "Kr", "ArKr")]
    last = read_results(ROOT / "results" / "dft_regime_last")
    assert {r["system"] for r in last} == {"Ar", "Kr", "ArKr"}
    for metric in ("local_r2_aligned", "local_r2_gauge"):
        table = width_table({"stopped": stopped, "last": last}, metric, ["Ar", "Kr", "ArKr"])
        assert table in doc, f"docs/dft.md: the {metric} early-stopping table differs"

    # the claim in docs/dft.md and the README: without early stopping the mixture's aligned
    # score falls at the wide end and the gauge-projected one does not
    flat = " ".join(doc.split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    by_width = {metric: {w: v.mean() for w, v in group_metric(
        [r for r in last if r["system"] == "ArKr"], metric, ["system"])[("ArKr",)].items()}
        for metric in ("local_r2_aligned", "local_r2_gauge", "aligned_share_transfer")}
    aligned, gauge = by_width["local_r2_aligned"], by_width["local_r2_gauge"]
    wide = [gauge[w] for w in (128, 256, 500)]
    ends = {w: np.array([r["local_r2_aligned"] for r in last
                         if (r["system"], r["width"]) == ("ArKr", w)]) for w in (128, 500)}
    error = np.sqrt(sum(v.var(ddof=1) / len(v) for v in ends.values()))
    assert aligned[128] - aligned[500] > 4 * error  # resolved against the seeds' spread
    assert (f"{aligned[128] - aligned[500]:.3f}, is {(aligned[128] - aligned[500]) / error:.1f} "
            "standard errors of the difference of the two 5-seed means") in flat
    assert max(wide) - min(wide) < 0.01
    fall = (f"peaks at width 128 ({aligned[128]:.3f}) and falls to {aligned[256]:.3f} at width "
            f"256 and {aligned[500]:.3f} at width 500")
    assert fall in flat
    assert f"score {wide[0]:.3f}, {wide[1]:.3f} and {wide[2]:.3f} at widths 128, 256" in flat
    share = " -> ".join(f"{by_width['aligned_share_transfer'][w]:.2f}" for w in (128, 256, 500))
    assert f"grows with width, {share}" in flat
    span = f"{min(wide):.3f}-{max(wide):.3f}"
    assert (f"falls from {aligned[128]:.3f} at width 128 to {aligned[500]:.3f} at 500, while its "
            f"gauge-projected score stays at {span}") in readme


def test_paper_regime_early_stopping_tables_are_the_committed_results():
    """docs/paper_regime.md shows the L-BFGS early-stopping against last-parameters tables as
    `width_table` renders them from results/paper_regime/protocol_lbfgs{,_last}/."""
    from toolkit.studies.regime import width_table
    from toolkit.studies.sweep import read_results

    doc = (ROOT / "docs" / "paper_regime.md").read_text()
    results = ROOT / "results" / "paper_regime"
    tables = {label: read_results(results / f"protocol_{label}")
              for label in ("lbfgs", "lbfgs_last")}
    assert all(int(r["best_iteration"]) == 1000 for r in tables["lbfgs_last"])
    comparison = (results / "comparison_lbfgs_last.md").read_text()
    for metric in ("local_r2_aligned", "total_r2"):
        table = width_table(tables, metric, ["Ar", "ArKr"])
        assert table in doc and table in comparison
    gauge = width_table({"lbfgs_last": tables["lbfgs_last"]}, "local_r2_gauge", ["ArKr"])
    assert gauge in doc and gauge in comparison


def test_paper_regime_gpu_tables_are_the_committed_results():
    """docs/paper_regime.md ("The paper's grid on a GPU") shows exactly the tables
    `width_table` renders from results/paper_regime/paper_gpu/ and paper_adam32_gpu/ and
    `step_table` from gpu_step.json, names the wide cells that did not run, and quotes the
    data-size GPU cells and the README's summary as stored."""
    from toolkit.studies.regime import data_size_table, group_metric, step_table, width_table
    from toolkit.studies.sweep import read_results

    doc = (ROOT / "docs" / "paper_regime.md").read_text()
    flat = " ".join(doc.split())
    results = ROOT / "results" / "paper_regime"
    rows = read_results(results / "paper_gpu")
    adam = read_results(results / "paper_adam32_gpu")
    on_cpu = read_results(results / "paper_cpu")  # this machine's CPU, same bundles
    cpu = [r for r in on_cpu if (r["activation"], r["depth"]) == ("linear", 1)]
    two = [r for r in on_cpu if r["depth"] == 2]
    assert len(rows) == 102 * 5 and len(adam) == 18 * 5 and len(cpu) >= 30 * 5
    assert len(cpu) + len(two) == len(on_cpu) and len(two) >= 36 * 5
    assert all(np.isfinite(r["local_r2_gauge"]) for r in rows + adam + on_cpu)
    everything = ("local_r2_aligned", ["Ar", "Kr", "ArKr"]), ("local_r2_gauge", ["ArKr"]), \
        ("total_r2", ["Ar", "Kr", "ArKr"])
    for metric, systems in everything:  # "GPU": the H100's and the H200's cells
        assert width_table({"GPU": rows}, metric, systems) in doc, metric
    for metric, systems in everything:  # two layers: CPU (narrow) and GPU (wide)
        assert width_table({"CPU": two, "GPU": rows}, metric, systems, "tanh", 2) in doc
        assert width_table({"CPU": two, "GPU": rows}, metric, systems, "linear", 2) in doc
    assert min(r["best_iteration"] for r in two if r["width"] == 1) > 60  # the fixed 1x1 cells
    spans = {act: {s: [v.mean() for v in group_metric(
        [r for r in two + rows if (r["activation"], r["depth"], r["system"]) == (act, 2, s)],
        metric, ["system"])[(s,)].values()] for s, metric in
        (("Ar", "local_r2_aligned"), ("Kr", "local_r2_aligned"), ("ArKr", "local_r2_gauge"))}
        for act in ("tanh", "linear")}
    deep = {w: v.mean() for w, v in group_metric(
        [r for r in two + rows if (r["activation"], r["depth"]) == ("tanh", 2)],
        "local_r2_aligned", ["system"])[("ArKr",)].items()}
    wide_deep = [deep[w] for w in (100, 150, 200, 300, 400, 500)]
    tanh2 = {w: v.mean() for w, v in group_metric(
        [r for r in two if r["activation"] == "tanh"], "local_r2_aligned",
        ["system"])[("ArKr",)].items()}
    assert (f"Ar {min(spans['tanh']['Ar']):.3f}-{max(spans['tanh']['Ar']):.3f}, Kr "
            f"{min(spans['tanh']['Kr']):.3f}-{max(spans['tanh']['Kr']):.3f}, the mixture's aligned "
            f"score falling from {tanh2[4]:.3f} (width 4) to {tanh2[32]:.3f} (32) and "
            f"{min(wide_deep):.3f}-{max(wide_deep):.3f} (100-500) at a "
            f"gauge-projected {min(spans['tanh']['ArKr']):.3f}-{max(spans['tanh']['ArKr']):.3f}"
            ) in " ".join((ROOT / "README.md").read_text().split())
    assert (f"Linear (one linear model of the descriptors at any width and depth): Ar "
            f"{min(spans['linear']['Ar']):.3f}-{max(spans['linear']['Ar']):.3f}, Kr "
            f"{min(spans['linear']['Kr']):.3f}-{max(spans['linear']['Kr']):.3f}") in flat
    linear_wide = [v.mean() for w, v in group_metric(
        [r for r in two + rows if (r["activation"], r["depth"]) == ("linear", 2)],
        "local_r2_aligned", ["system"])[("ArKr",)].items() if w >= 100]
    assert len(linear_wide) == 6  # every wide two-layer linear cell ran
    assert (f"linear Ar {min(spans['linear']['Ar']):.3f}-{max(spans['linear']['Ar']):.3f}, Kr "
            f"{min(spans['linear']['Kr']):.3f}-{max(spans['linear']['Kr']):.3f}, the mixture "
            f"{min(linear_wide):.3f}-{max(linear_wide):.3f} aligned at widths 100-500") in \
        " ".join((ROOT / "README.md").read_text().split())
    assert (f"({min(linear_wide):.3f}-{max(linear_wide):.3f} at widths 100-500) and "
            f"{min(spans['linear']['ArKr']):.3f}-{max(spans['linear']['ArKr']):.3f} "
            "gauge-projected") in flat
    assert (f"{deep[12]:.3f} at 12, {deep[16]:.3f} at 16, {deep[24]:.3f} at 24, "
            f"{deep[32]:.3f} at 32, {deep[48]:.3f} at 48 and {deep[64]:.3f} at 64, to "
            f"{min(wide_deep):.3f}-{max(wide_deep):.3f} at 100-500") in flat
    assert all(deep[a] > deep[b] for a, b in ((12, 16), (16, 24), (24, 32), (32, 48), (48, 64)))
    linear = [r for r in rows if (r["activation"], r["depth"]) == ("linear", 1)]
    for metric, systems in (("local_r2_aligned", ["Ar", "Kr", "ArKr"]),
                            ("local_r2_gauge", ["ArKr"]), ("total_r2", ["Ar", "Kr", "ArKr"])):
        assert width_table({"CPU": cpu, "GPU": linear}, metric, systems, "linear") in doc, \
            ("linear", metric)
    wide = {100, 150, 200, 300, 400, 500}
    tanh = [r for r in rows if r["activation"] == "tanh" and r["width"] in wide]
    both = {"L-BFGS": [r for r in tanh if r["depth"] == 1], "Adam": adam}
    for metric, systems in (("local_r2_aligned", ["Ar", "Kr", "ArKr"]),
                            ("local_r2_gauge", ["ArKr"]), ("total_r2", ["Ar", "Kr", "ArKr"])):
        assert width_table(both, metric, systems) in doc, ("adam", metric)
    bench = json.loads((results / "gpu_step.json").read_text())
    assert step_table(bench) in doc
    for activation, depth, words in (("tanh", 2, "two-layer tanh"),
                                     ("linear", 1, "one-layer linear"),
                                     ("linear", 2, "two-layer linear")):
        ran = {(r["system"], r["width"]) for r in rows + on_cpu
               if (r["activation"], r["depth"]) == (activation, depth) and r["width"] in wide}
        missing = {s: sorted(w for w in wide if (s, w) not in ran) for s in ("Ar", "Kr", "ArKr")}
        named = "; ".join(f"{s} {', '.join(map(str, ws))}" for s, ws in missing.items() if ws)
        n_missing = sum(map(len, missing.values()))
        assert f"{len(ran)} of the 18 {words} cells" in flat, words
        if n_missing:
            assert f"the other {n_missing} {words} cells ({named})" in flat, (words, named)
        else:
            assert f"other {words}" not in flat

    def cell_means(chosen, metric, system):  # over seeds, one per (depth, width) cell
        chosen = [r for r in chosen if r["system"] == system]
        return [v.mean() for by_width in group_metric(chosen, metric, ["depth"]).values()
                for v in by_width.values()]

    def span(values):
        return f"{min(values):.3f}-{max(values):.3f}"

    low_high = span(cell_means(tanh, "local_r2_aligned", "ArKr"))  # widths 100-500
    assert f"then stays at {low_high} at widths 100-500**" in flat
    one = [r for r in rows if (r["activation"], r["depth"]) == ("tanh", 1)]
    narrow = group_metric([r for r in one if r["width"] < 100], "local_r2_aligned",
                          ["system"])
    fall = narrow[("ArKr",)]  # the mixture's one-layer cells of widths 12, 24, 48 here
    assert sorted(fall) == [12, 24, 48] and fall[12].mean() > fall[48].mean() + 0.03
    assert (f"falls from {fall[12].mean():.3f} at width 12 to {fall[48].mean():.3f} at 48"
            ) in flat
    pure = {s: span(cell_means(one, "local_r2_aligned", s)) for s in ("Ar", "Kr")}
    assert {r["width"] for r in one if r["system"] == "Ar"} >= {1, 2, 64, 500}
    worst = max(v.std() for s in ("Ar", "Kr") for v in group_metric(
        [r for r in one if r["system"] == s], "local_r2_aligned", ["system"])[(s,)].values())
    assert (f"score Ar {pure['Ar']} and Kr {pure['Kr']} at every width from 1 to 500, with "
            f"seed spreads of at most {worst:.3f}") in flat
    assert (f"Ar {pure['Ar']} and Kr {pure['Kr']} at every width from 1 to 500 with one "
            f"layer") in " ".join((ROOT / "README.md").read_text().split())
    intro = " ".join(doc[doc.index("**In short**"):].split("\n\n")[0].split())
    gauge = span(cell_means([r for r in rows if r["activation"] == "tanh"], "local_r2_gauge",
                            "ArKr"))
    assert (f"Ar {pure['Ar']} and Kr {pure['Kr']} (aligned local R2) at every width from 1 to "
            f"500" in intro and f"{low_high} at widths 100-500" in intro
            and f"gauge-projected score stays at {gauge}" in intro
            and "within 0.005 of L-BFGS" in intro), intro
    mixture_widths = set(tomllib.loads((ROOT / "sweeps" / "identifiability.toml").read_text())
                         ["sweep"]["widths"])  # the README's sentence: sweep_mixture.csv's
    same = {s: span([v.mean() for w, v in narrow[(s,)].items() if w in mixture_widths])
            for s in ("Ar", "Kr")}
    assert (f"The pure liquids do not fall: Ar {same['Ar']} and Kr {same['Kr']} at every one "
            "of these widths") in " ".join((ROOT / "README.md").read_text().split())
    share = [r["aligned_share_transfer"] for r in tanh if r["system"] == "ArKr"]
    assert f"(at widths 100-500, {min(share):.2f}-{max(share):.2f} of the mixture's aligned " \
        "error" in flat
    assert f"after {min(r['best_iteration'] for r in tanh)}-" \
        f"{max(r['best_iteration'] for r in tanh)} iterations" in flat
    # the Adam bullet: its ranges and its largest distance from L-BFGS, per cell
    assert (f"gives Ar {span(cell_means(adam, 'local_r2_aligned', 'Ar'))[:5]}, Kr "
            f"{span(cell_means(adam, 'local_r2_aligned', 'Kr'))} and the mixture "
            f"{span(cell_means(adam, 'local_r2_aligned', 'ArKr'))} aligned "
            f"({span(cell_means(adam, 'local_r2_gauge', 'ArKr'))}") in flat
    by_cell = {label: group_metric(chosen, "local_r2_aligned", ["system"])
               for label, chosen in both.items()}
    gap = max(abs(values.mean() - by_cell["L-BFGS"][system][width].mean())
              for system, by_width in by_cell["Adam"].items()
              for width, values in by_width.items())
    assert 0.004 < gap <= 0.005 and "every cell's mean within 0.005 of L-BFGS" in flat
    spread = max(values.std() for by_width in by_cell["Adam"].values()
                 for values in by_width.values())
    assert f"seed spread of at most {spread:.3f}" in flat
    both_linear = linear + cpu
    assert (f"score Ar {span(cell_means(both_linear, 'local_r2_aligned', 'Ar'))} and Kr "
            f"{span(cell_means(both_linear, 'local_r2_aligned', 'Kr'))} at every width from 1 "
            f"to 500; the mixture {span(cell_means(both_linear, 'local_r2_aligned', 'ArKr'))} "
            f"aligned but {span(cell_means(both_linear, 'local_r2_gauge', 'ArKr'))} "
            "gauge-projected") in flat
    share = [r["aligned_share_transfer"] for r in both_linear if r["system"] == "ArKr"]
    assert f"({min(share):.2f}-{max(share):.2f} of its aligned error)" in flat
    on_gpu = {(r["system"], r["width"], r["seed"]): r for r in linear}
    pairs = [(r, on_gpu[(r["system"], r["width"], r["seed"])]) for r in cpu
             if (r["system"], r["width"], r["seed"]) in on_gpu]
    if pairs:  # cells trained on both devices: rounding moves the path, not the score
        d_r2 = max(abs(a["local_r2_aligned"] - b["local_r2_aligned"]) for a, b in pairs)
        d_it = max(abs(int(a["best_iteration"]) - int(b["best_iteration"])) for a, b in pairs)
        assert d_r2 < 1e-3
        assert f"(up to {d_it} apart), and their aligned local R2 differ by at most " \
            f"{d_r2:.1e}" in flat
    totals = [m for system in ("Ar", "Kr", "ArKr")
              for m in cell_means(both_linear, "total_r2", system)]
    assert f"(total R2 {span(totals)}; tanh 0.997-0.999 at widths 100-500)" in flat
    tanh_totals = [m for system in ("Ar", "Kr", "ArKr")
                   for m in cell_means(tanh, "total_r2", system)]
    assert f"(total R2 {span(tanh_totals)})" in flat
    ratios = [row["cpu_over_cuda"] for row in bench["steps"].values()]
    assert f"{min(ratios):.0f}-{max(ratios):.0f} times faster on the H100" in flat
    small = read_results(results / "data_size_gpu")
    for metric, system, words in (("local_r2_aligned", "Ar", "Ar aligned local R2"),
                                  ("total_r2", "Ar", "total R2"),
                                  ("local_r2_aligned", "ArKr", "ArKr aligned"),
                                  ("local_r2_gauge", "ArKr", "gauge-projected")):
        entry = data_size_table(small, metric, system).splitlines()[-1].split(" | ")[1]
        entry = entry.strip(" |")
        assert f"{words} {entry}" in flat, (metric, system, entry)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"the mixture's aligned score {low_high} while" in readme
    assert "every cell within 0.005 of L-BFGS" in readme
    assert (f"are flat too: Ar {span(cell_means(both_linear, 'local_r2_aligned', 'Ar'))}, Kr "
            f"{span(cell_means(both_linear, 'local_r2_aligned', 'Kr'))}.") in readme
    assert step_table(bench) in (ROOT / "README.md").read_text()
    for name in ("paper_gpu_local_r2_tanh_d1.png", "paper_gpu_adam_vs_lbfgs_tanh_d1.png",
                 "paper_grid_tanh_d2.png", "paper_grid_linear_d2.png"):
        assert f"figures/{name}" in doc and (ROOT / "docs" / "figures" / name).is_file()



def test_paper_gpu_control_cells_equal_the_committed_cells():
    """The six cells the fourth GPU session trained again, from bundles remade on another
    machine, equal the committed cells (docs/paper_regime.md, "The GPU procedure"): every
    training and score column to the last digit, the gauge decomposition's shares (computed
    on the CPU afterwards for the committed tanh cells, `--fill-gauge`) to 1e-13 relative.
    The evidence that the remade bundles hold the same frames."""
    import csv

    from toolkit.studies.identifiability import GAUGE_COLUMNS

    results = ROOT / "results" / "paper_regime" / "paper_gpu"
    controls = sorted((results / "control_session_5").glob("*.csv"))
    assert len(controls) == 6
    for path in controls:
        again, committed = ([dict(r) for r in csv.DictReader(p.open())]
                            for p in (path, results / "cells" / path.name))
        assert len(again) == len(committed) == 5
        for a, c in zip(again, committed, strict=True):
            assert a.pop("cell_seconds") != c.pop("cell_seconds")  # two runs, not one file
            for column in GAUGE_COLUMNS:
                if a[column] != "":
                    assert float(a.pop(column)) == pytest.approx(float(c.pop(column)),
                                                                 rel=1e-13, abs=0), column
            assert a == c, path.name


def test_linear_sums_control_cells_agree_with_the_committed_cells_within_seed_noise():
    """The two-layer linear cells of widths 64 (this CPU, atom rows) and 300 (H200) trained
    again on this CPU with --linear-sums (results/paper_regime/paper_cpu/control_linear_sums/):
    other members (best iterations differ), but cell means of aligned, gauge-projected and
    total R2 within 4 standard errors (the doc quotes the largest, 3.1), as between devices
    (Kr linear one layer width 150 on the H100 and here); docs/paper_regime.md quotes the
    figures. Negative control: against
    another system's cell the difference is far outside."""
    import csv

    results = ROOT / "results" / "paper_regime"
    flat = " ".join((ROOT / "docs" / "paper_regime.md").read_text().split())

    def column(path, name):
        return np.array([float(r[name]) for r in csv.DictReader(path.open())])

    def z(a, b, name):
        x, y = column(a, name), column(b, name)
        return (x.mean() - y.mean()) / np.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))

    controls = sorted((results / "paper_cpu" / "control_linear_sums").glob("*.csv"))
    assert len(controls) == 6
    metrics = ("local_r2_aligned", "local_r2_gauge", "total_r2")
    worst, aligned, seconds, iterations = 0.0, (0.0, None), {}, {"sums": [], "rows": []}
    for path in controls:
        width = int(path.stem.rsplit("_w", 1)[1])
        committed = results / ("paper_cpu" if width == 64 else "paper_gpu") / "cells" / path.name
        ours, theirs = column(path, "best_iteration"), column(committed, "best_iteration")
        assert not np.array_equal(ours, theirs)  # other members
        iterations["sums"] += list(ours)
        iterations["rows"] += list(theirs)
        worst = max(worst, *(abs(z(path, committed, m)) for m in metrics))
        gap = column(path, "local_r2_aligned").mean() - column(committed,
                                                               "local_r2_aligned").mean()
        if abs(gap) > abs(aligned[0]):
            aligned = (gap, path.stem)
        for key, p in (("sums", path), ("rows", committed)):
            seconds.setdefault((width, key), []).append(column(p, "cell_seconds")[0])
    assert worst < 4.0
    assert aligned[1] == "ArKr_linear_d2_w64"

    def span(values, digits):
        return f"{min(values):.{digits}f}-{max(values):.{digits}f}"

    assert (f"within {worst:.1f} standard errors (largest aligned difference "
            f"{abs(aligned[0]):.4f}, ArKr width 64") in flat
    assert f"best iterations {span(iterations['sums'], 0)} against " \
        f"{span(iterations['rows'], 0)}" in flat
    assert (f"width 64 (trained here on atom rows, {span(seconds[64, 'rows'], 0)} s per cell; "
            f"with `--linear-sums` {span(seconds[64, 'sums'], 1)} s) and 300 (H200, "
            f"{span(seconds[300, 'rows'], 0)} s; here {span(seconds[300, 'sums'], 0)} s)"
            ) in flat
    gpu, cpu = (results / folder / "cells" / "Kr_linear_d1_w150.csv"
                for folder in ("paper_gpu", "paper_cpu"))
    device = column(gpu, "local_r2_aligned").mean() - column(cpu, "local_r2_aligned").mean()
    assert (f"aligned {abs(device):.4f} ({abs(z(gpu, cpu, 'local_r2_aligned')):.1f} standard "
            f"errors), total R2 {abs(z(gpu, cpu, 'total_r2')):.1f} standard errors") in flat
    assert (f"best iterations {span(column(gpu, 'best_iteration'), 0)} against "
            f"{span(column(cpu, 'best_iteration'), 0)}") in flat
    worst_cell = results / "paper_cpu" / "control_linear_sums" / f"{aligned[1]}.csv"
    stds = [column(p, "local_r2_aligned").std(ddof=1)
            for p in (worst_cell, results / "paper_cpu" / "cells" / worst_cell.name)]
    assert f"where the seed std is {stds[0]:.4f} and {stds[1]:.4f}" in flat
    new = [column(results / "paper_cpu" / "cells" / f"{s}_linear_d2_w{w}.csv",
                  "cell_seconds")[0] for s in ("Ar", "Kr", "ArKr") for w in (400, 500)]
    assert (f"widths 400 and 500, which no GPU session finished, ran on this CPU in "
            f"{span(new, 0)} s each") in flat
    bench = json.loads((ROOT / "benchmarks" / "results.json").read_text())["linear_sums"]
    worst_value = max(v["value_max_relative_difference"] for k, v in bench.items()
                      if k.startswith("w"))
    assert (f"{bench['w16x16']['speedup']:.1f}x (width 16) to "
            f"{bench['w256x256']['speedup']:.1f}x (width 256) faster, the values equal to "
            f"{worst_value:.1e} relative") in flat
    assert bench["w16x16"]["speedup"] < bench["w64x64"]["speedup"] < bench["w256x256"]["speedup"]
    # negative control: the statistic separates cells that do differ (another system's)
    ar = results / "paper_cpu" / "control_linear_sums" / "Ar_linear_d2_w64.csv"
    other = results / "paper_cpu" / "cells" / "Kr_linear_d2_w64.csv"
    assert abs(z(ar, other, "local_r2_aligned")) > 10


def test_paper_regime_data_size_tables_are_the_committed_results():
    """docs/paper_regime.md ("Data size") shows local R2 against width for every number of
    training frames exactly as `data_size_table` renders it from results/paper_regime/data_size/
    (the `aetk report` tables there), names every cell that did not run, and draws the
    figures it links."""
    from toolkit.studies.regime import data_size_table
    from toolkit.studies.sweep import read_results

    doc = (ROOT / "docs" / "paper_regime.md").read_text()
    results = ROOT / "results" / "paper_regime" / "data_size"
    rows = read_results(results)
    assert {int(r["n_train"]) for r in rows} >= {50, 200, 1000}
    for metric in ("local_r2_aligned", "local_r2_gauge", "total_r2"):
        report = (results / f"data_size_{metric}_tanh_d1.md").read_text()
        for system in ("Ar", "ArKr"):
            table = data_size_table(rows, metric, system)
            assert table in doc, f"docs/paper_regime.md: data-size {metric} {system} differs"
            assert table in report
    cells = json.loads((results / "config.json").read_text())
    planned = {(s, w, n) for s in cells["systems"] for w in cells["widths"]
               for n in cells["train_frames"]}
    ran = {(r["system"], int(r["width"]), int(r["n_train"])) for r in rows}
    missing = sorted(planned - ran)
    for system, width, n in missing:  # the doc says which cells did not run
        assert f"{system} width {width} at {n} frames" in " ".join(doc.split()), (system, width, n)
    for metric in ("local_r2_aligned", "local_r2_gauge"):
        name = f"data_size_{metric}_tanh_d1.png"
        assert f"figures/{name}" in doc and (ROOT / "docs" / "figures" / name).is_file()


def test_readme_md_wall_numbers_are_the_committed_table():
    """The README's MD-with-walls paragraph quotes results/md_walls/summary.csv
    (scripts/md_walls.py): collapse times of the bare networks, g(r) and energy differences,
    closest pairs and wall fractions; a changed number is caught."""
    import csv

    readme = " ".join((ROOT / "README.md").read_text().split())
    with open(ROOT / "results" / "md_walls" / "summary.csv", newline="") as handle:
        rows = {r["run"]: r for r in csv.DictReader(handle)}
    walled = ["ar-tanh4", "kr-tanh4", "arkr-tanh4", "arkr-from-pure-tanh4"]
    assert all(rows[name]["status"] == "completed" for name in walled)
    assert all(rows[f"{name}-bare"]["status"] == "unstable" for name in walled)
    at = {name: float(rows[f"{name}-bare"]["stopped_ps_into_phase"]) for name in walled}
    phrase = (f"Kr {at['kr-tanh4']:g} ps, ArKr {at['arkr-tanh4']:g} ps and the assembled "
              f"pure->mixture model {at['arkr-from-pure-tanh4']:g} ps into the equilibration, "
              f"Ar {at['ar-tanh4']:g} ps into production")
    assert phrase in readme
    assert rows["ar-tanh4-bare"]["stopped_phase"] == "production"
    rdf = [float(rows[n]["rdf_integrated_abs_difference_A"]) for n in walled]
    assert (f"|g - g_ref| {rdf[0]:.2f} Ar, {rdf[1]:.2f} Kr, {rdf[2]:.2f} ArKr, {rdf[3]:.2f} "
            "assembled") in readme
    pe = [abs(float(rows[n]["mean_pe_difference_meV_per_atom"])) for n in walled]
    assert "within " + " / ".join(f"{v:.1f}" for v in pe) + " meV/atom" in readme
    inside = [100 * float(rows[n]["wall_fraction_of_frames_inside"]) for n in walled]
    assert (f"{inside[0]:.0f}% (Ar), {inside[1]:.0f}% (Kr), {inside[2]:.0f}% (ArKr) and "
            f"{inside[3]:.0f}% (assembled)") in readme
    ar, mix = rows["ar-tanh4"], rows["arkr-tanh4"]
    assert (f"Ar-Ar {float(ar['closest_in_md_Ar-Ar_A']):.2f} A in pure Ar, data >= "
            f"{float(ar['closest_in_data_Ar-Ar_A']):.2f} A; Kr-Kr "
            f"{float(mix['closest_in_md_Kr-Kr_A']):.2f} A in the mixture, data >= "
            f"{float(mix['closest_in_data_Kr-Kr_A']):.2f} A") in readme
    assert [rows[f"{n}-bare"]["stopped_phase"] for n in walled[1:]] == ["equilibration"] * 3
    assert f"Kr {at['kr-tanh4'] + 5:g} ps" not in readme  # the melt is not counted


def quick_sweep_sentence(results_dir: Path) -> str:
    """The README's "What the curves show" sentence, from the demo sweep's committed tables
    (results/quick: `make demo`'s results.csv and transfer.csv)."""
    import pandas as pd

    rows = pd.read_csv(results_dir / "results.csv")
    tanh = rows[(rows.activation == "tanh") & (rows.depth == 1)]
    means = tanh.groupby(["system", "width"]).local_r2_aligned.mean()

    def span(values, digits=3):
        low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
        return low if low == high else f"{low}-{high}"

    transfer = pd.read_csv(results_dir / "transfer.csv")
    cells = transfer.groupby(["direction", "system", "activation", "depth", "width"])
    local = cells.local_r2_aligned.mean()
    pearson = cells.total_pearson.mean()
    to_pure, to_mix = local.loc["mixture->pure"], local.loc["pure->mixture"]
    widths = sorted(tanh.width.unique())
    cap = json.loads((results_dir / "config.json").read_text())["training"]["max_iterations"]
    return (f"Ar {span(means['Ar'])} and Kr {span(means['Kr'])} at widths "
            f"{widths[0]}-{widths[-1]}; the mixture {span(means['ArKr'])}; members stopped "
            f"after {tanh.best_iteration.min()}-{tanh.best_iteration.max()} L-BFGS iterations "
            f"(cap {cap}). Transfer (cell means over "
            f"all architectures): mixture networks on the pure liquids {span(to_pure, 2)}, "
            f"pure networks on the mixture {span(to_mix, 2)} aligned local R2; transferred "
            f"totals correlate (Pearson {span(pearson, 3)})")


def test_readme_demo_numbers_are_the_committed_demo_tables():
    """The README's description of the demo's curves quotes results/quick (a copy of
    `make demo`'s tables); a changed number is caught."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    sentence = quick_sweep_sentence(ROOT / "results" / "quick")
    assert sentence in readme
    import pandas as pd  # "the mixture scores lowest at width 1"

    rows = pd.read_csv(ROOT / "results" / "quick" / "results.csv")
    mixture = rows[(rows.system == "ArKr") & (rows.activation == "tanh") & (rows.depth == 1)]
    assert mixture.groupby("width").local_r2_aligned.mean().idxmin() == 1
    assert "the mixture scores lowest at width 1" in readme
    assert sentence.replace("Ar 0.", "Ar 1.", 1) not in readme


def test_emergence_doc_tables_are_the_committed_results():
    """docs/emergence.md shows exactly the tables `aetk emergence report --out
    results/emergence` prints: three ceiling tables, the two search tables and both maps;
    a changed number is caught."""
    from toolkit.studies.emergence import _read_csv, ceilings_table, map_table, search_table

    doc = (ROOT / "docs" / "emergence.md").read_text()
    out = ROOT / "results" / "emergence"
    ceilings = sorted(out.glob("ceilings-*.json"))
    assert len(ceilings) == 3
    rows = _read_csv(out / "search.csv")
    assert len(rows) == 840
    tables = [ceilings_table(p) for p in ceilings]
    tables += [search_table(rows, model) for model in ("linear", "quadratic")]
    tables += [map_table(out / name) for name in ("map", "map-rc16")]
    for table in tables:
        assert table in doc, table.splitlines()[0]
    assert tables[-1].replace("0.978 ± 0.000", "0.979 ± 0.000") not in doc
    # each map under its own heading (the two maps have the same shape)
    default = doc.index("At the default spec (twojmax 6, rcutfac 1.45; `map/`)")
    first = doc.index("At the first default (twojmax 6, rcutfac 1.6; `map-rc16/`)")
    assert default < doc.index(tables[-2]) < first < doc.index(tables[-1])


def test_potentials_readme_scores_are_their_committed_files():
    """potentials/README.md's test scores are each potential's `test_metrics_sweep` (meta.json)
    and, for the assembled one, its committed evaluation; a changed number is caught."""
    readme = (ROOT / "potentials" / "README.md").read_text()
    for name in ("ar-tanh4", "kr-tanh4", "arkr-tanh4"):
        m = json.loads((ROOT / "potentials" / name / "meta.json").read_text())
        m = m["test_metrics_sweep"]
        assert f"| {m['local_r2_aligned']:.3f} / {m['total_r2']:.3f} |" in readme, name
    e = json.loads((ROOT / "results" / "potentials" /
                    "arkr-from-pure-tanh4.evaluation.json").read_text())["metrics"]
    scores = f"{e['local_aligned']['r2']:.2f} / {e['total']['r2']:.2f} (offset totals"
    assert scores in readme
    assert scores.replace("/ -", "/ ") not in readme
