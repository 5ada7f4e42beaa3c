"""The labelled water-flow series (``../shared/data/lifelines``) as a one-file NAB folder, to score the
detectors on it with the NAB scorer (docs/detect.md, "Water flow")::

    python3 benchmarks/waterflow_folder.py /tmp/waterflow
    python3 -m engine nab /tmp/waterflow/data --out /tmp/wfres
    python3 ../shared/tools/nabscore.py /tmp/wfres --nab-root /tmp/waterflow --optimizer fixed --threshold 0.99

The series has no label column: its four documented segments are located by rule (runs below 90 l/s: three
low-flow losses; the pumping peak above 106 l/s on 2022-04-03; the 2-hour rebound at 03-29 06:00 starts the
second low run). Windows: 10 % of the rows split over the four, 31 rows each centred on a segment's start.
Timestamps in local wall time.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

#: the series, in the shared data next to the repository
SOURCE = Path(__file__).resolve().parents[2] / "shared/data/lifelines/water_flow_hourly.csv"
#: the four documented segments' starts (local wall time), located by the rule above
STARTS = ["2022-03-24 09:00", "2022-03-29 06:00", "2022-04-03 06:00", "2022-04-27 16:00"]


def main(argv=None) -> list[list[str]]:
    ap = argparse.ArgumentParser(description="the water-flow series as a one-file NAB folder")
    ap.add_argument("out", type=Path, help="folder to write (data/ and labels/ inside)")
    ap.add_argument("--source", type=Path, default=SOURCE, help=f"the series' CSV (default {SOURCE})")
    a = ap.parse_args(argv)
    if not a.source.is_file():
        ap.error(f"--source {a.source}: no such file (expected ../shared/data/lifelines/water_flow_hourly.csv)")
    d = pd.read_csv(a.source)
    ts = pd.to_datetime(d["Time"].str.slice(0, 19))      # local wall time
    (a.out / "data/lifelines").mkdir(parents=True, exist_ok=True)
    (a.out / "labels").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"timestamp": ts.dt.strftime("%Y-%m-%d %H:%M:%S"), "value": d.iloc[:, 1]}).to_csv(
        a.out / "data/lifelines/water_flow.csv", index=False)
    half = pd.Timedelta(hours=int(0.10 * len(d) / len(STARTS)) // 2)   # 31 rows: 15 h each side
    f = "%Y-%m-%d %H:%M:%S.%f"
    win = [[(s - half).strftime(f), (s + half).strftime(f)] for s in pd.to_datetime(STARTS)]
    (a.out / "labels/combined_windows.json").write_text(json.dumps({"lifelines/water_flow.csv": win}, indent=1))
    return win


if __name__ == "__main__":
    print(main())
