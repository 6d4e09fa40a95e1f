"""Replay report: `headroom backtest scale` on every series, reactive (the
Kubernetes HPA algorithm) against predictive, over several targets.

Totals are recomputed here from the CSV each run prints (rows where demand >
capacity, sum of capacity), not taken from the binary's own summary.

For every HPA target the report asks the issue's two questions:
  half:  among predictive settings costing no more than HPA, the fewest
         under-provisioned rows; passes if at most half of HPA's.
  cheap: among predictive settings under-provisioning no more than HPA, the
         lowest cost; passes if at most 80 % of HPA's.
Predictive settings are `--target` x `--miss-cost`, with the default
hysteresis (`--down-window 2`, the HPA's own 300 s stabilisation, which the
policy waives for a series whose scale-downs have measurably held) and without
it (`--down-window 1`). Choosing the best setting per row is selection on the
evaluated data, so the default setting (same target, defaults otherwise) is
shown beside it. Stdlib only.
"""
import argparse
import csv
import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HPA_TARGETS = [0.5, 0.6, 0.7, 0.8, 0.9]
PRED_TARGETS = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
# Half-decades: the trade-off between cost and misses moves by as much
# between 10,000 and 100,000 as over the whole grid on bursty series.
MISS_COSTS = [100, 300, 1000, 3000, 10000, 30000, 100000]
DEFAULT_MISS_COST = 1000
WINDOWS = [2, 1]
DEFAULT_WINDOW = 2


def replay(binary, series, delay, policy, target, miss_cost=None, window=None):
    cmd = [binary, "backtest", "scale", "--input", str(series), "--policy", policy,
           "--target", str(target), "--delay-steps", str(delay)]
    if miss_cost is not None:
        cmd += ["--miss-cost", str(miss_cost), "--down-window", str(window)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    under = sum(1 for r in rows if r["demand"] and float(r["demand"]) > int(r["capacity"]))
    cost = sum(int(r["capacity"]) for r in rows)
    return under, cost


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--delay-steps", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    files = sorted(Path(args.data).glob("*.csv"))
    if not files:
        sys.exit(f"error: no *.csv series in {args.data}")

    jobs = {}
    with ThreadPoolExecutor(args.jobs) as pool:
        for f in files:
            for t in HPA_TARGETS:
                jobs[(f, "reactive", t, None)] = pool.submit(
                    replay, args.bin, f, args.delay_steps, "reactive", t)
            jobs[(f, "static", 0.7, None)] = pool.submit(
                replay, args.bin, f, args.delay_steps, "static", 0.7)
            for t in PRED_TARGETS:
                for m in MISS_COSTS:
                    for w in WINDOWS:
                        jobs[(f, "predictive", t, (m, w))] = pool.submit(
                            replay, args.bin, f, args.delay_steps, "predictive", t, m, w)
        res = {k: v.result() for k, v in jobs.items()}

    print(f"delay {args.delay_steps} row(s); demand scaled to a median of 10 instance units; "
          "cost = instance-rows; under = rows with demand > capacity; "
          "setting = predictive T (target), M (miss cost), W (down window)")
    passed = {w: 0 for w in WINDOWS}
    for f in files:
        s_under, s_cost = res[(f, "static", 0.7, None)]
        print(f"\n{f.stem}  (static peak-sized at 0.7: under {s_under}, cost {s_cost})")
        print(f"{'HPA T':>5} {'under':>6} {'cost':>11} | {'default':>6} {'cost':>11}"
              f" | {'W':>1} {'half: under':>11} {'cost':>11} {'setting':>15} {'ok':>3}"
              f" | {'cheap: cost':>11} {'ratio':>5} {'setting':>15} {'ok':>3}")
        series_ok = {w: False for w in WINDOWS}
        for t in HPA_TARGETS:
            h_under, h_cost = res[(f, "reactive", t, None)]
            d_under, d_cost = res.get((f, "predictive", t, (DEFAULT_MISS_COST, DEFAULT_WINDOW)), ("-", "-"))
            for w in WINDOWS:
                preds = [(k[2], k[3][0], *v) for k, v in res.items()
                         if k[0] == f and k[1] == "predictive" and k[3][1] == w]
                within = [p for p in preds if p[3] <= h_cost]
                half = min(within, key=lambda p: (p[2], p[3]), default=None)
                half_ok = half is not None and half[2] <= h_under / 2
                covering = [p for p in preds if p[2] <= h_under]
                cheap = min(covering, key=lambda p: (p[3], p[2]), default=None)
                cheap_ok = cheap is not None and cheap[3] <= 0.8 * h_cost
                series_ok[w] |= half_ok or cheap_ok
                fmt = lambda p: f"T={p[0]},M={p[1]}" if p else "-"
                lead = (f"{t:>5} {h_under:>6} {h_cost:>11} | {d_under!s:>6} {d_cost!s:>11}"
                        if w == WINDOWS[0] else " " * 39)
                ratio = f"{cheap[3] / h_cost:.2f}" if cheap else "-"
                print(f"{lead} | {w:>1} {half[2] if half else '-':>11} {half[3] if half else '-':>11}"
                      f" {fmt(half):>15} {'yes' if half_ok else 'no':>3}"
                      f" | {cheap[3] if cheap else '-':>11} {ratio:>5} {fmt(cheap):>15}"
                      f" {'yes' if cheap_ok else 'no':>3}")
        for w in WINDOWS:
            passed[w] += series_ok[w]
        print("goal met at one or more HPA targets: "
              + ", ".join(f"W={w}: {'yes' if series_ok[w] else 'no'}" for w in WINDOWS))
    print("\nseries meeting the goal at one or more HPA targets: "
          + ", ".join(f"W={w}: {passed[w]} of {len(files)}" for w in WINDOWS))


if __name__ == "__main__":
    main()
