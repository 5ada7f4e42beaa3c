#!/usr/bin/env python3
"""Reproduce Prem et al. (2020, Lancet Public Health): when should Wuhan relax its lockdown?

Runs the authors' age-structured SEIR on the shipped Wuhan population and China contact matrices
for R0 drawn from the shipped posterior, under three scenarios (no intervention; staggered return
to work from 1 March; from 1 April), and writes:

* ``DIR/summary.json``: ``reduction_mid2020`` and ``reduction_end2020`` (median reduction in
  cumulative infections, April relaxation against no intervention, at 2020-07-01 and 2020-12-31,
  as fractions, with IQRs), the same against March, cumulative infections on 1 July, and the peak
  dates of each scenario (the second peak for March and April);
* ``DIR/curves.csv``: median and IQR of daily incidence per scenario;
* ``DIR/prem_wuhan.png``: the curves.

Usage: ``python scenarios/prem_wuhan.py --out DIR [--seed N] [--quick]`` (``--quick``: 50 draws).
The paper reports 0.92 (IQR 0.66-0.97) and 0.24 (0.13-0.90).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from engine.sim.prem import reproduce  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="output folder (created)")
    ap.add_argument("--seed", type=int, default=123, help="seed of the R0 draws (default 123)")
    ap.add_argument("--draws", type=int, default=200, help="R0 draws (default 200)")
    ap.add_argument("--quick", action="store_true", help="50 draws instead of --draws")
    ap.add_argument("--dur-inf", type=float, default=7.0, help="mean infectious period, days (7 or 3)")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    args = ap.parse_args(argv)
    n_draws = 50 if args.quick else args.draws
    if n_draws < 1:
        ap.error(f"--draws must be >= 1, got {n_draws}")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary, runs = reproduce(n_draws=n_draws, seed=args.seed, dur_inf=args.dur_inf)
    summary["runtime_s"] = round(time.perf_counter() - t0, 3)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    dates = runs["april"]["dates"][1:]
    lines = ["date," + ",".join(f"{k}_{q}" for k in runs for q in ("q25", "median", "q75"))]
    qs = {k: np.percentile(v["incidence"], [25, 50, 75], axis=1) for k, v in runs.items()}
    for t, d in enumerate(dates):
        lines.append(str(d) + "," + ",".join(f"{qs[k][i, t]:.3f}" for k in runs for i in range(3)))
    (args.out / "curves.csv").write_text("\n".join(lines) + "\n")

    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 4.5))
        for k, colour in zip(runs, ("black", "tab:red", "tab:blue")):
            ax.plot(dates, qs[k][1], color=colour, label=k.replace("_", " "))
            ax.fill_between(dates, qs[k][0], qs[k][2], color=colour, alpha=0.15)
        ax.set_ylabel("new infectious cases per day (median, IQR)")
        ax.set_title(f"Wuhan, Prem et al. 2020 model, {n_draws} R0 draws")
        ax.legend()
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(args.out / "prem_wuhan.png", dpi=110)
        plt.close(fig)

    print(f"reduction (April vs no intervention): mid-2020 {summary['reduction_mid2020']:.2f} "
          f"(IQR {summary['reduction_mid2020_iqr'][0]:.2f}-{summary['reduction_mid2020_iqr'][1]:.2f}), "
          f"end-2020 {summary['reduction_end2020']:.2f} "
          f"(IQR {summary['reduction_end2020_iqr'][0]:.2f}-{summary['reduction_end2020_iqr'][1]:.2f}); "
          f"paper 0.92 (0.66-0.97), 0.24 (0.13-0.90)")
    pk = summary["peak_dates"]
    print(f"peaks: no intervention {pk['no_intervention']['peak']}, March second peak "
          f"{pk['march']['second_peak']}, April second peak {pk['april']['second_peak']}")
    print(f"wrote {args.out}/summary.json, curves.csv{'' if args.no_plot else ', prem_wuhan.png'} "
          f"in {summary['runtime_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
