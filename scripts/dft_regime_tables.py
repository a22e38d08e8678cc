"""Tables of docs/dft.md ("What the toolkit learns") from results/dft_regime/.

    python scripts/dft_regime_tables.py results/dft_regime    # writes results/dft_regime/tables.md

Read only from the folder's results.csv (and transfer.csv where it exists); every table is
mean ± std over seeds per width (toolkit.studies.regime.width_table, the renderer of
`aetk report --compare`). tests/test_docs.py checks that docs/dft.md shows these tables.
"""

from __future__ import annotations

import sys
from pathlib import Path

SYSTEMS = ["Ar", "Kr", "ArKr", "Ar24Kr8", "Ar8Kr24"]
MIXTURES = ["ArKr", "Ar24Kr8", "Ar8Kr24"]
METRICS = {"total_r2": "total-energy R2", "local_r2_aligned": "aligned local R2",
           "local_r2_gauge": "gauge-projected local R2"}


def split_table(rows: list[dict]) -> str:
    """Training and test frames per system, as the sweep recorded them (n_train, n_test)."""
    lines = ["| system | training frames | test frames | test atoms | seeds per cell |",
             "|---|---|---|---|---|"]
    for system in SYSTEMS:
        chosen = [r for r in rows if r["system"] == system]
        if not chosen:
            continue
        train = sorted({int(r["n_train"]) for r in chosen})
        test = sorted({int(r["n_test"]) for r in chosen})
        seeds = sorted({int(r["seed"]) for r in chosen})
        lines.append(f"| {system} | {', '.join(map(str, train))} | {', '.join(map(str, test))}"
                     f" | {', '.join(str(32 * n) for n in test)} | {len(seeds)} |")
    return "\n".join(lines) + "\n"


def stopping_table(rows: list[dict]) -> str:
    """Median (min-max) over systems and seeds of the iteration early stopping kept."""
    import numpy as np

    lines = ["| width | linear | tanh |", "|---|---|---|"]
    for width in sorted({int(r["width"]) for r in rows}):
        cells = []
        for activation in ("linear", "tanh"):
            its = np.array([int(r["best_iteration"]) for r in rows
                            if int(r["width"]) == width and r["activation"] == activation])
            cells.append(f"{np.median(its):.0f} ({its.min()}-{its.max()})" if len(its) else "")
        lines.append(f"| {width} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def sweep_tables(rows: list[dict]) -> dict[str, str]:
    """(title -> markdown): total and aligned local R2 for every system, gauge-projected
    local R2 for the mixtures (in a pure liquid it equals the aligned score)."""
    from toolkit.studies.regime import width_table

    out = {}
    for activation in ("linear", "tanh"):
        for metric, systems in (("total_r2", SYSTEMS), ("local_r2_aligned", SYSTEMS),
                                ("local_r2_gauge", MIXTURES)):
            title = f"sweep {metric} {activation}"
            out[title] = width_table({"dft": rows}, metric, systems, activation)
    return out


BANDS = ((1, 1), (2, 16), (32, 64), (128, 500))


def band_shift(by_width: dict) -> float:
    """Mean over widths 128-500 minus mean over widths 1-16 of the seed means (the last
    column of ``band_table``; ``by_width``: width -> values over seeds)."""
    import numpy as np

    wide = [v.mean() for w, v in by_width.items() if w >= BANDS[-1][0]]
    narrow = [v.mean() for w, v in by_width.items() if w <= BANDS[1][1]]
    return float(np.mean(wide) - np.mean(narrow)) if wide and narrow else float("nan")


def band_table(rows: list[dict], metric: str, systems: list[str]) -> str:
    """The width axis in four bands: per system and activation, the seed mean of ``metric``
    at width 1 and its range (min-max over widths) in each band, and the largest seed std
    of the widest band, and the wide bands' mean minus the narrow ones' (``band_shift``; the
    summary at the top of docs/dft.md's learning section)."""
    from toolkit.studies.regime import group_metric

    names = [f"width {lo}" if lo == hi else f"widths {lo}-{hi}" for lo, hi in BANDS]
    lines = ["| system | activation | " + " | ".join(names)
             + f" | largest seed std, {names[-1]} | mean of 128-500 minus mean of 1-16 |",
             "|---|---|" + "---|" * (len(BANDS) + 2)]
    for system in systems:
        for activation in ("linear", "tanh"):
            chosen = [r for r in rows if (r["system"], r["activation"]) == (system, activation)]
            if not chosen:
                continue
            by_width = group_metric(chosen, metric, [])[()]
            cells = []
            for lo, hi in BANDS:
                means = [f"{v.mean():.3f}" for w, v in sorted(by_width.items()) if lo <= w <= hi]
                ends = sorted(set(means), key=float)
                cells.append("-".join(dict.fromkeys([ends[0], ends[-1]])) if means else "")
            lo, hi = BANDS[-1]
            spread = [v.std() for w, v in by_width.items() if lo <= w <= hi]
            cells.append(f"{max(spread):.3f}" if spread else "")
            cells.append(f"{band_shift(by_width):+.3f}")
            lines.append(f"| {system} | {activation} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def transfer_tables(rows: list[dict]) -> dict[str, str]:
    """(title -> markdown): pure Ar + Kr networks on the mixture, mixture networks on the
    pure liquids (transfer.csv of `aetk transfer`)."""
    from toolkit.studies.regime import width_table

    by_direction = {d: [r for r in rows if r["direction"] == d]
                    for d in ("pure->mixture", "mixture->pure")}
    by_direction = {d: r for d, r in by_direction.items() if r}
    out = {"transfer totals": transfer_totals_table(rows)}
    for activation in ("linear", "tanh"):
        for metric in ("local_r2_aligned", "local_r2_gauge"):
            title = f"transfer {metric} {activation}"
            out[title] = width_table(by_direction, metric, ["ArKr", "Ar", "Kr"], activation)
    return out


def _span(rows: list[dict], metric: str, scale: float = 1.0, fmt: str = ".3f") -> str:
    """min to max over widths of the seed mean of ``metric`` (times ``scale``)."""
    import numpy as np

    widths = sorted({int(r["width"]) for r in rows})
    means = [scale * np.mean([float(r[metric]) for r in rows if int(r["width"]) == w])
             for w in widths]
    return f"{min(means):{fmt}} to {max(means):{fmt}}"


def transfer_totals_table(rows: list[dict]) -> str:
    """Totals under transfer: the range over widths of the seed means of total R2, Pearson r
    and RMSE per atom (32 atoms per frame)."""
    lines = ["| direction | target | activation | total R2 | total Pearson r | "
             "total RMSE (meV/atom) |", "|---|---|---|---|---|---|"]
    keys = sorted({(r["direction"], r["system"], r["activation"]) for r in rows},
                  key=lambda k: (k[0] != "pure->mixture", k[1], k[2] != "linear"))
    for direction, target, activation in keys:
        chosen = [r for r in rows if (r["direction"], r["system"], r["activation"])
                  == (direction, target, activation)]
        lines.append(f"| {direction} | {target} | {activation} | "
                     f"{_span(chosen, 'total_r2', fmt='.3g')} | "
                     f"{_span(chosen, 'total_pearson')} | "
                     f"{_span(chosen, 'total_rmse', 1e3 / 32, '.1f')} |")
    return "\n".join(lines) + "\n"


def render(folder: str | Path) -> dict[str, str]:
    from toolkit.studies.sweep import read_results

    folder = Path(folder)
    rows = read_results(folder / "results.csv")
    tables = {"summary local_r2_aligned": band_table(rows, "local_r2_aligned", SYSTEMS),
              "summary local_r2_gauge": band_table(rows, "local_r2_gauge", MIXTURES),
              "split": split_table(rows), "best iteration": stopping_table(rows),
              **sweep_tables(rows)}
    if (folder / "transfer.csv").is_file():
        tables.update(transfer_tables(read_results(folder / "transfer.csv")))
    return tables


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "results/dft_regime")
    tables = render(folder)
    text = "".join(f"### {title}\n\n{table}\n" for title, table in tables.items())
    (folder / "tables.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
