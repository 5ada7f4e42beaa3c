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
import json
import os
import sys
from pathlib import Path

import pandas as pd

out = sys.argv[1]
d = pd.read_csv(Path(__file__).resolve().parents[2] / "shared/data/lifelines/water_flow_hourly.csv")
ts = pd.to_datetime(d["Time"].str.slice(0, 19))      # local wall time
os.makedirs(f"{out}/data/lifelines", exist_ok=True); os.makedirs(f"{out}/labels", exist_ok=True)
pd.DataFrame({"timestamp": ts.dt.strftime("%Y-%m-%d %H:%M:%S"), "value": d.iloc[:, 1]}).to_csv(
    f"{out}/data/lifelines/water_flow.csv", index=False)
starts = pd.to_datetime(["2022-03-24 09:00", "2022-03-29 06:00", "2022-04-03 06:00", "2022-04-27 16:00"])
half = pd.Timedelta(hours=int(0.10 * len(d) / len(starts)) // 2)   # 31 rows: 15 h each side
f = "%Y-%m-%d %H:%M:%S.%f"
win = [[(s - half).strftime(f), (s + half).strftime(f)] for s in starts]
json.dump({"lifelines/water_flow.csv": win}, open(f"{out}/labels/combined_windows.json", "w"), indent=1)
print(win)
