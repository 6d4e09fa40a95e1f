"""Scores `headroom backtest anomalies` output against the NAB anomaly windows.

For each series: how many labelled windows hold at least one flagged row
(recall of windows), and the flagged rows outside every window, as rows and as
alarms (a run of consecutive flagged rows counts once), per 1,000 rows.
Stdlib only.
"""

import argparse
import csv
import datetime as dt
import json
from pathlib import Path


def parse(ts):
    return dt.datetime.fromisoformat(ts.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", required=True, help="NAB combined_windows JSON")
    ap.add_argument("--runs", required=True, help="dir of <series>.csv: timestamp,score,is_anomaly")
    args = ap.parse_args()

    labels = json.loads(Path(args.labels).read_text())
    rows_out = []
    totals = [0, 0, 0, 0, 0]  # found, windows, false rows, false alarms, rows
    for path in sorted(Path(args.runs).glob("*.csv")):
        key = next((k for k in labels if k.endswith("/" + path.name)), None)
        if key is None:
            raise SystemExit(f"no labels for {path.name}")
        windows = [(parse(a), parse(b)) for a, b in labels[key]]
        found = [False] * len(windows)
        false_rows = false_alarms = n = 0
        previous_false = False
        with path.open() as f:
            for r in csv.DictReader(f):
                n += 1
                flagged = r["is_anomaly"] == "1"
                t = parse(r["timestamp"])
                inside = [i for i, (a, b) in enumerate(windows) if a <= t <= b]
                if flagged:
                    for i in inside:
                        found[i] = True
                is_false = flagged and not inside
                if is_false:
                    false_rows += 1
                    if not previous_false:
                        false_alarms += 1
                previous_false = is_false
        rows_out.append((path.stem, sum(found), len(windows), false_rows, false_alarms, n))
        for i, v in enumerate((sum(found), len(windows), false_rows, false_alarms, n)):
            totals[i] += v

    print("| series | windows found | false-alarm rows /1000 | false alarms (runs) /1000 |")
    print("|---|---:|---:|---:|")
    for name, f, w, fr, fa, n in rows_out:
        print(f"| {name} | {f}/{w} | {1000 * fr / n:.2f} | {1000 * fa / n:.2f} |")
    f, w, fr, fa, n = totals
    print(f"| **all** | {f}/{w} ({f / w:.0%}) | {1000 * fr / n:.2f} | {1000 * fa / n:.2f} |")


if __name__ == "__main__":
    main()
