"""The accuracy protocol, in one place so baselines.py and score.py cannot drift.

A series is strictly the sequence of CSV rows (row index = position): no dedup,
no resampling, timestamps are ignored. See README.md for the full definition.
Depends on the stdlib and numpy only.
"""
import csv
import sys
from pathlib import Path

import numpy as np

H = 12  # horizon: forecast rows o+1..o+H
E = 12  # a new origin every E rows
N = 2016  # minimum training length: the first origin is row N-1
M = 288  # seasonal period for the MASE scale (one day of 5-minute steps)


def load_series(path):
    """Values of a `timestamp,value` CSV, in row order."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([float(r["value"]) for r in rows], dtype=float)


def series_files(data_dir):
    files = sorted(Path(data_dir).glob("*.csv"))
    if not files:
        sys.exit(f"error: no *.csv series in {data_dir}")
    return files


def origins(n_rows):
    """0-based index of the last observed row of every forecast origin."""
    return list(range(N - 1, n_rows - H, E))  # o + H <= n_rows - 1


def expected_keys(n_rows):
    return {(o, h) for o in origins(n_rows) for h in range(1, H + 1)}


def mase_scale(y, name=""):
    """Mean seasonal-naive (m=M) absolute error over the first N rows only.

    Falls back to the one-step naive error, then to 1, so a flat start cannot
    divide by zero; both fallbacks are announced on stderr.
    """
    head = y[:N]
    scale = float(np.mean(np.abs(head[M:] - head[:-M])))
    if scale == 0:
        scale = float(np.mean(np.abs(np.diff(head))))
        print(f"warning: {name}: seasonal-naive scale is 0, using one-step naive scale {scale}",
              file=sys.stderr)
    if scale == 0:
        scale = 1.0
        print(f"warning: {name}: naive scale is 0 too, using scale 1", file=sys.stderr)
    return scale
