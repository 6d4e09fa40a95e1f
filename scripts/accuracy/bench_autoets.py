"""Times statsforecast AutoETS on the series `headroom bench forecast
--write-series DIR` wrote, so both run on exactly the same data.

One fit + 12-step forecast with an 80 % interval per series (what our cold
path does per series), season length 288 as in the accuracy baselines.
Prints seconds per series; with --ours-us (our cold µs per series) also the ratio.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import AutoETS


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series-dir", required=True)
    ap.add_argument("--sample", type=int, default=5, help="series timed (AutoETS is slow)")
    ap.add_argument("--horizon", type=int, default=12)
    ap.add_argument("--ours-us", type=float, help="our cold microseconds per series")
    args = ap.parse_args()

    files = sorted(Path(args.series_dir).glob("*.csv"))[: args.sample]
    if not files:
        raise SystemExit(f"no series in {args.series_dir}")
    # Warm-up: numba compiles on first use; that is not per-series cost.
    warm = pd.read_csv(files[0])
    StatsForecast(models=[AutoETS(season_length=288)], freq=1).forecast(
        df=pd.DataFrame({"unique_id": "w", "ds": np.arange(len(warm)), "y": warm["value"]}),
        h=args.horizon,
        level=[80],
    )
    started = time.perf_counter()
    for f in files:
        s = pd.read_csv(f)
        df = pd.DataFrame({"unique_id": f.stem, "ds": np.arange(len(s)), "y": s["value"]})
        StatsForecast(models=[AutoETS(season_length=288)], freq=1, n_jobs=1).forecast(
            df=df, h=args.horizon, level=[80]
        )
    per_series = (time.perf_counter() - started) / len(files)
    print(f"statsforecast AutoETS(season_length=288): {len(files)} series, "
          f"{per_series:.3f} s/series (one core)")
    if args.ours_us:
        print(f"ours (cold, wall per series on all cores) / AutoETS: "
              f"{per_series * 1e6 / args.ours_us:.0f}x faster")


if __name__ == "__main__":
    main()
