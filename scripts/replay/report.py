"""Replay report: `headroom backtest scale` on every series, reactive (the
Kubernetes HPA algorithm) against predictive, over several targets.

Totals are recomputed here from the CSV each run prints (rows where demand >
capacity, sum of capacity), not taken from the binary's own summary.

For every HPA target the report asks the issue's two questions:
  half:  among predictive settings costing no more than HPA, the fewest
         under-provisioned rows; passes if at most half of HPA's.
  cheap: among predictive settings under-provisioning no more than HPA, the
         lowest cost; passes if at most 80 % of HPA's.
Settings are `--target` x `--miss-rate`; choosing the best of them per row is
selection on the evaluated data, so the default setting (same target, default
miss rate) is shown beside it. Stdlib only.
"""
import argparse
import csv
import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HPA_TARGETS = [0.5, 0.6, 0.7, 0.8, 0.9]
PRED_TARGETS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
MISS_RATES = [0.02, 0.05, 0.1, 0.2]
DEFAULT_MISS = 0.05


def replay(binary, series, delay, policy, target, miss=None):
    cmd = [binary, "backtest", "scale", "--input", str(series), "--policy", policy,
           "--target", str(target), "--delay-steps", str(delay)]
    if miss is not None:
        cmd += ["--miss-rate", str(miss)]
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
                for m in MISS_RATES:
                    jobs[(f, "predictive", t, m)] = pool.submit(
                        replay, args.bin, f, args.delay_steps, "predictive", t, m)
        res = {k: v.result() for k, v in jobs.items()}

    print(f"delay {args.delay_steps} row(s); demand scaled to a median of 10 instance units; "
          "cost = instance-rows; under = rows with demand > capacity")
    passed = 0
    for f in files:
        name = f.stem
        s_under, s_cost = res[(f, "static", 0.7, None)]
        print(f"\n{name}  (static peak-sized at 0.7: under {s_under}, cost {s_cost})")
        print(f"{'HPA target':>10} {'HPA under':>9} {'HPA cost':>11} | {'default under':>13} {'cost':>11}"
              f" | {'half: under':>11} {'cost':>11} {'setting':>12} {'ok':>3}"
              f" | {'cheap: cost':>11} {'ratio':>6} {'setting':>12} {'ok':>3}")
        preds = [(k[2], k[3], *v) for k, v in res.items() if k[0] == f and k[1] == "predictive"]
        series_ok = False
        for t in HPA_TARGETS:
            h_under, h_cost = res[(f, "reactive", t, None)]
            d_under, d_cost = res.get((f, "predictive", t, DEFAULT_MISS), (None, None))
            within = [p for p in preds if p[3] <= h_cost]
            half = min(within, key=lambda p: (p[2], p[3]), default=None)
            half_ok = half is not None and half[2] <= h_under / 2
            covering = [p for p in preds if p[2] <= h_under]
            cheap = min(covering, key=lambda p: (p[3], p[2]), default=None)
            cheap_ok = cheap is not None and cheap[3] <= 0.8 * h_cost
            series_ok |= half_ok or cheap_ok
            fmt = lambda p: f"T={p[0]},m={p[1]}" if p else "-"
            print(f"{t:>10} {h_under:>9} {h_cost:>11} | {d_under!s:>13} {d_cost!s:>11}"
                  f" | {half[2] if half else '-':>11} {half[3] if half else '-':>11} {fmt(half):>12} {'yes' if half_ok else 'no':>3}"
                  f" | {cheap[3] if cheap else '-':>11} {cheap[3] / h_cost if cheap else float('nan'):>6.2f} {fmt(cheap):>12} {'yes' if cheap_ok else 'no':>3}")
        passed += series_ok
        print(f"goal met at some HPA target: {'yes' if series_ok else 'no'}")
    print(f"\nseries meeting the goal at one or more HPA targets: {passed} of {len(files)}")


if __name__ == "__main__":
    main()
