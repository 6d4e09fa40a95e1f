#!/usr/bin/env python3
"""Score forecast runs under the accuracy protocol (README.md); prints a markdown table.

Each --runs DIR is one model, labelled by the directory name, holding one
`origin,h,p10,p50,p90` CSV per input series (same file name as the series).
A run whose (origin, h) set differs from the protocol's in any way is an error:
a partial or shifted backtest must not be scored as if it were comparable.
With --allow-missing a run may lack whole series (a baseline still fitting):
those cells read "—", the best baseline of that series is taken over the
runs that have it, and the notes under the table say what was missing.
Needs only the stdlib and numpy.
"""
import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocol as P  # noqa: E402

BASELINES = ("Naive", "SeasonalNaive", "AutoETS", "MSTL")  # the statsforecast runs
TARGET_RATIO = 0.9  # ours must be at least 10% below the best baseline's MASE
COVERAGE_BAND = (0.75, 0.85)  # p10..p90 should hold ~80% of the actuals


def fail(msg):
    sys.exit(f"error: {msg}")


def read_run(path, n_rows, allow_missing=False):
    """(origin, h) -> (p10, p50, p90), checked against the protocol's exact key set;
    None for a missing file when allowed."""
    if not path.is_file():
        if allow_missing:
            return None
        fail(f"{path}: missing")
    got = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != ["origin", "h", "p10", "p50", "p90"]:
            fail(f"{path}: header {reader.fieldnames}, want origin,h,p10,p50,p90")
        for i, r in enumerate(reader, start=2):
            key = (int(r["origin"]), int(r["h"]))
            if key in got:
                fail(f"{path}:{i}: duplicate (origin, h) = {key}")
            q = tuple(float(r[c]) for c in ("p10", "p50", "p90"))
            if not all(math.isfinite(v) for v in q):
                fail(f"{path}:{i}: non-finite forecast {q}")
            got[key] = q
    want = P.expected_keys(n_rows)
    if set(got) != want:
        missing, extra = sorted(want - set(got)), sorted(set(got) - want)
        fail(f"{path}: (origin, h) set is not the protocol's (H={P.H}, E={P.E}, N={P.N}, "
             f"{n_rows} rows): {len(missing)} missing e.g. {missing[:3]}, "
             f"{len(extra)} unexpected e.g. {extra[:3]}")
    return got


def score(run, y, scale):
    keys = sorted(run)
    actual = np.array([y[o + h] for o, h in keys])
    p10, p50, p90 = (np.array(c) for c in zip(*(run[k] for k in keys)))
    crossed = int(np.sum((p10 > p50) | (p50 > p90)))
    mase = float(np.mean(np.abs(actual - p50)) / scale)
    coverage = float(np.mean((p10 <= actual) & (actual <= p90)))
    return mase, coverage, crossed


def fmt(x):
    return "—" if x is None else f"{x:.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="directory of timestamp,value CSVs")
    ap.add_argument("--runs", required=True, nargs="+", help="run directories (name = model label)")
    ap.add_argument("--ours", help="label of the model judged against the best baseline")
    ap.add_argument("--allow-missing", action="store_true",
                    help="score runs that lack some series (never --ours)")
    args = ap.parse_args()

    runs = {Path(d).resolve().name: Path(d) for d in args.runs}
    if len(runs) != len(args.runs):
        fail("two --runs directories share a name (the name is the model label)")
    labels = list(runs)
    baselines = [m for m in labels if m in BASELINES]
    if args.ours and args.ours not in runs:
        fail(f"--ours {args.ours} is not one of the runs {labels}")

    header = ["series"]
    for m in labels:
        header += [f"{m} MASE", f"{m} cov"]
    header += ["best baseline"]
    if args.ours:
        header += [f"{args.ours}/best", "≥10% below best", "cov in [0.75, 0.85]"]

    rows, table = [], []  # rows: numeric per series, for the mean row
    missing = {}  # label -> series it lacks
    for f in P.series_files(args.data):
        y = P.load_series(f)
        scale = P.mase_scale(y, f.stem)
        res = {}
        for m, d in runs.items():
            run = read_run(d / f.name, len(y), args.allow_missing and m != args.ours)
            if run is None:
                res[m] = (None, None, 0)
                missing.setdefault(m, []).append(f.stem)
                continue
            res[m] = score(run, y, scale)
            if res[m][2]:
                print(f"warning: {m}/{f.name}: {res[m][2]} rows with crossed quantiles", file=sys.stderr)
        have = [m for m in baselines if res[m][0] is not None]
        best = min(have, key=lambda m: res[m][0]) if have else None
        num = {m: res[m][:2] for m in labels}
        num["best"] = res[best][0] if best else None
        cells = [f.stem] + [fmt(v) for m in labels for v in res[m][:2]]
        cells.append(f"{fmt(num['best'])} ({best})" if best else "—")
        if args.ours:
            num["ratio"] = res[args.ours][0] / num["best"] if best else None
            cells += verdict(num["ratio"], res[args.ours][1])
        rows.append(num)
        table.append(cells)

    # Mean over series of every column (the ratio column: mean of per-series
    # ratios); a run lacking series is averaged over those it has.
    def avg(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    mean = ["**mean**"] + [fmt(avg([r[m][i] for r in rows])) for m in labels for i in (0, 1)]
    mean.append(fmt(avg([r["best"] for r in rows])))
    if args.ours:
        ratio = avg([r["ratio"] for r in rows])
        mean += verdict(ratio, avg([r[args.ours][1] for r in rows]))
    table.append(mean)

    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for cells in table:
        print("| " + " | ".join(cells) + " |")
    for m, series in missing.items():
        print(f"\n{m}: no forecasts yet for {', '.join(series)} (best baseline there: the others; "
              f"its mean is over the other {len(rows) - len(series)} series)")


def verdict(ratio, coverage):
    lo, hi = COVERAGE_BAND
    return [fmt(ratio),
            "—" if ratio is None else ("yes" if ratio <= TARGET_RATIO else "no"),
            "yes" if lo <= coverage <= hi else "no"]


if __name__ == "__main__":
    main()
