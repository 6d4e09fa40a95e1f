#!/usr/bin/env python3
"""statsforecast baselines under the accuracy protocol (README.md).

For every series and model: refit at every origin o on rows 0..=o, forecast H
steps with level=[80], write --out/<model>/<series>.csv as `origin,h,p10,p50,p90`
(p10 = lo-80, p50 = mean, p90 = hi-80) plus a <series>.meta.json with the wall
time and which model statsforecast actually picked at each origin.

We loop over origins by hand instead of StatsForecast.cross_validation: its
windows end at the last row, so they miss our origin set whenever
(len-1-H) - (N-1) is not a multiple of E (ec2_network_in_5abac7), and it needs
timestamps, which have duplicates here. model.fit(y[:o+1]) is the same fit.

Slow (AutoETS/MSTL with m=288): a (model, series) whose CSV exists is skipped
unless --force, and a (model, series) cut short resumes from its per-origin
checkpoint; the CSV is written to a temp file and renamed, so it is never half.
"""
import os

# One BLAS/OpenMP thread per worker: we parallelise over origins instead.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import collections
import json
import multiprocessing
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocol as P  # noqa: E402

MODELS = ("Naive", "SeasonalNaive", "AutoETS", "MSTL")
LEVEL = 80  # lo-80 / hi-80 are the 10% / 90% quantiles


def make_model(name):
    # statsforecast's own defaults apart from the season length.
    from statsforecast.models import MSTL, AutoETS, Naive, SeasonalNaive

    return {
        "Naive": lambda: Naive(),
        "SeasonalNaive": lambda: SeasonalNaive(season_length=P.M),
        "AutoETS": lambda: AutoETS(season_length=P.M),
        "MSTL": lambda: MSTL(season_length=[P.M]),  # trend: its default AutoETS(model="ZZN")
    }[name]()


def picked(name, fitted):
    """What statsforecast chose at this origin (ETS components: error, trend, season, damped)."""
    if name == "AutoETS":
        return fitted.model_["components"]
    if name == "MSTL":
        return "trend " + fitted.trend_forecaster.model_["components"]
    return name


def fit_origin(name, y, o):
    """One refit on rows 0..=o; a JSON-able record of its forecast rows."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = make_model(name).fit(y[: o + 1])
        f = fitted.predict(h=P.H, level=[LEVEL])
    lo, mid, hi = f[f"lo-{LEVEL}"], f["mean"], f[f"hi-{LEVEL}"]
    return {
        "origin": o,
        # repr of a Python float round-trips exactly.
        "rows": [f"{o},{h + 1},{float(lo[h])!r},{float(mid[h])!r},{float(hi[h])!r}" for h in range(P.H)],
        "picked": picked(name, fitted),
        "zero_width": int(np.sum(hi - lo <= 0)),
        "warnings": [str(w.message)[:120] for w in caught],
        "seconds": time.perf_counter() - t0,
    }


_SERIES = {}


def fit_task(task):
    """One (model, series, origin) in a worker; the series is loaded once per process."""
    name, src, o = task
    if src not in _SERIES:
        _SERIES[src] = P.load_series(src)
    return src, fit_origin(name, _SERIES[src], o)


class SeriesRun:
    """The origins of one (model, series). Each finished origin is appended to a
    <series>.partial.jsonl checkpoint (by the parent process only), so a run killed
    part way (AutoETS takes hours on some series) resumes where it stopped; fits
    are deterministic, so the order origins finish in does not matter."""

    def __init__(self, name, src, dst, force):
        self.name, self.src, self.dst = name, src, dst
        self.origins = list(P.origins(len(P.load_series(src))))
        dst.parent.mkdir(parents=True, exist_ok=True)
        self.ckpt = dst.with_suffix(".partial.jsonl")
        if force:
            self.ckpt.unlink(missing_ok=True)
        self.done = {}
        if self.ckpt.exists():
            for line in self.ckpt.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:  # a line cut short by the kill
                    continue
                self.done[rec["origin"]] = rec
            # Drop any cut-short line, so appending goes on from a clean file.
            self.ckpt.write_text("".join(json.dumps(self.done[o]) + "\n" for o in sorted(self.done)))
            print(f"  {name}/{src.stem}: resuming, {len(self.done)} origins done", flush=True)
        self.missing = [o for o in self.origins if o not in self.done]
        self.out = open(self.ckpt, "a")

    def add(self, rec):
        self.done[rec["origin"]] = rec
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()
        return len(self.done) == len(self.origins)

    def finish(self):
        import statsforecast

        self.out.close()
        recs = [self.done[o] for o in self.origins]
        tmp = self.dst.with_suffix(".csv.tmp")
        tmp.write_text("origin,h,p10,p50,p90\n" + "".join(r + "\n" for rec in recs for r in rec["rows"]))
        tmp.replace(self.dst)
        choices = collections.Counter(rec["picked"] for rec in recs)
        wall = sum(rec["seconds"] for rec in recs)
        meta = {
            "model": self.name,
            "series": self.src.stem,
            "statsforecast": statsforecast.__version__,
            "origins": len(recs),
            "wall_seconds": round(wall, 2),  # sum of per-origin fit+predict times
            "picked": dict(choices.most_common()),
            "zero_width_intervals": sum(rec["zero_width"] for rec in recs),
            "warnings": dict(collections.Counter(w for rec in recs for w in rec["warnings"]).most_common()),
        }
        self.dst.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        self.ckpt.unlink()
        print(f"  {self.name}/{self.src.stem}: {wall:.1f}s, picked {dict(choices.most_common(3))}", flush=True)


def run_all(runs, jobs):
    """Every missing origin of every run, spread over `jobs` workers, so all
    cores stay busy until the last origin (not just while two series last).
    Series with the fewest origins left go first, so they finish early."""
    runs = sorted(runs, key=lambda r: len(r.missing))
    by_src = {r.src: r for r in runs}
    for r in runs:
        if not r.missing:
            r.finish()
    tasks = [(r.name, r.src, o) for r in runs for o in r.missing]
    if not tasks:
        return
    with multiprocessing.Pool(min(jobs, len(tasks))) as pool:
        for src, rec in pool.imap_unordered(fit_task, tasks, chunksize=1):
            if by_src[src].add(rec):
                by_src[src].finish()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="directory of timestamp,value CSVs")
    ap.add_argument("--out", required=True, help="output root; writes <out>/<model>/<series>.csv")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--jobs", type=int, default=2, help="origins fitted in parallel (default 2)")
    ap.add_argument("--force", action="store_true", help="recompute existing outputs")
    args = ap.parse_args()

    import statsforecast

    print(f"statsforecast {statsforecast.__version__}, numpy {np.__version__}", flush=True)
    files = P.series_files(args.data)
    out = Path(args.out)
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    for name in args.models:
        jobs = [(name, f, out / name / f"{f.stem}.csv", args.force) for f in files]
        todo = [j for j in jobs if args.force or not j[2].exists()]
        print(f"{name}: {len(todo)} to fit, {len(jobs) - len(todo)} cached", flush=True)
        t0 = time.perf_counter()
        if todo:
            run_all([SeriesRun(*j) for j in todo], args.jobs)
            # Elapsed wall-clock of this invocation (with --jobs workers in parallel).
            timings[name] = {"elapsed_seconds": round(time.perf_counter() - t0, 1), "jobs": args.jobs}
        # Per-series fit time (sum over its origins), from the sidecars, cached or not.
        metas = [json.loads(j[2].with_suffix(".meta.json").read_text()) for j in jobs]
        timings.setdefault(name, {})["sum_series_seconds"] = round(sum(m["wall_seconds"] for m in metas), 1)
        timings[name]["series_seconds"] = {m["series"]: m["wall_seconds"] for m in metas}
        timings[name]["picked"] = {m["series"]: m["picked"] for m in metas}
        out.mkdir(parents=True, exist_ok=True)
        timings_path.write_text(json.dumps(timings, indent=2) + "\n")
        print(f"{name}: sum of per-series wall {timings[name]['sum_series_seconds']}s", flush=True)


if __name__ == "__main__":
    main()
