"""``cityvitals nab``: score a NAB-style folder of series with the engine's own detectors.

For every ``DATA_DIR/<category>/<file>.csv`` (columns ``timestamp,value``) it writes
``RESULTS_DIR/<category>/<file>.csv`` with ``timestamp,value,anomaly_score`` (one row per
input row) and ``RESULTS_DIR/threshold.json`` with the score level at which the engine
alerts (``engine.levels.WARN``). Each series is scored by ``engine.detect.score_series``:
a seasonal and a local model through the detector kernels on a 1 x 1 problem, each followed
by the anomaly-likelihood layer (``engine.detect.likelihood``), the larger score kept. The
anomaly score of a row is that score where an alert is raised (score reaching ``WARN`` with
no alert open, and not within ``engine.detect.series.NAB_HOLDOFF`` cycles of the last raised
one; see ``engine.detect.alert_onsets``) and 0 elsewhere, since NAB counts every row above
its threshold as a new detection while the engine raises one alert per episode. ``--pending N``
opens an alert only after ``N`` cycles in a row at or above ``WARN`` (the engine's alert
lifecycle's ``pending_cycles``; 1 by default here, 3 in production). See docs/detect.md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``nab`` command to the top-level ``subparsers``."""
    p = subparsers.add_parser(
        "nab",
        help="score a NAB-style folder of series with the engine's detectors (writes NAB result files)",
        description="Run the engine's detector kernels one series at a time over DATA_DIR/<category>/*.csv "
                    "(timestamp,value) and write NAB result files plus threshold.json to --out.",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", help="folder laid out like NAB's data/ (category folders of CSVs)")
    p.add_argument("--out", metavar="RESULTS_DIR", required=True, help="folder to write results into (created)")
    p.add_argument("--raw", action="store_true",
                   help="write the per-row score instead of alert onsets (for analysis)")
    p.add_argument("--no-likelihood", action="store_true",
                   help="score with the detectors alone, without the anomaly-likelihood layer (for comparison)")
    p.add_argument("--pending", type=int, default=1, metavar="N",
                   help="cycles in a row a score must stay at or above WARN before an alert opens (default 1; "
                        "the engine's alert lifecycle uses 3 in production, see docs/detect.md)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    import numpy as np
    import pandas as pd

    from engine.detect import alert_onsets, score_series
    from engine.detect.series import NAB_HOLDOFF
    from engine.levels import WARN

    t0 = time.perf_counter()
    data = Path(args.data_dir)
    if not data.is_dir():
        print(f"cityvitals nab: DATA_DIR {str(data)!r} is not a folder", file=sys.stderr)
        return 2
    files = sorted(p for p in data.glob("*/*.csv") if p.is_file())
    if not files:
        print(f"cityvitals nab: no CSV files in {str(data)!r}/<category>/", file=sys.stderr)
        return 2
    pending = getattr(args, "pending", 1)
    if pending < 1:
        print(f"cityvitals nab: --pending must be at least 1, got {pending}", file=sys.stderr)
        return 2
    out = Path(args.out)
    n_rows = 0
    for f in files:
        cols = _read(f)
        if "timestamp" not in cols or "value" not in cols:
            print(f"cityvitals nab: {f} lacks a timestamp or value column (has {list(cols)})", file=sys.stderr)
            return 2
        stamps, text = cols["timestamp"], cols["value"]
        values = _numbers(text)
        scores = score_series(values, pd.to_datetime(pd.Index(stamps)),
                              likelihood=not getattr(args, "no_likelihood", False))
        col = np.nan_to_num(scores.astype(np.float64), nan=0.0) if args.raw else \
            alert_onsets(scores, holdoff=NAB_HOLDOFF, pending=pending)
        dest = out / f.parent.name / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        _write(dest, stamps, text, col)
        n_rows += len(stamps)
    out.mkdir(parents=True, exist_ok=True)
    (out / "threshold.json").write_text(json.dumps({"threshold": WARN}) + "\n")
    if not args.quiet:
        print(f"scored {len(files)} files, {n_rows} rows in {time.perf_counter() - t0:.1f} s -> {out}")
    return 0


def _read(path) -> dict:
    """Columns of a CSV file as lists of their text (plain comma-separated files: NAB's; a
    file with quotes goes through pandas)."""
    text = Path(path).read_text()
    if '"' in text:
        import pandas as pd

        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        return {c: df[c].tolist() for c in df.columns}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return {}
    names = [h.strip() for h in lines[0].split(",")]
    rows = [ln.split(",") for ln in lines[1:]]
    return {name: [r[j].strip() if j < len(r) else "" for r in rows] for j, name in enumerate(names)}


def _numbers(text):
    """float64 array of number strings (blank or not a number: NaN)."""
    import numpy as np
    import pandas as pd

    try:
        return np.array(text, dtype=np.float64)
    except ValueError:
        return pd.to_numeric(pd.Series(text, dtype=object).replace("", "nan"), errors="coerce").to_numpy(np.float64)


def _write(dest, timestamps, values, scores) -> None:
    """``timestamp,value,anomaly_score`` rows: the input's text, the score as ``%.7g`` (``0``
    for the zeros, most rows)."""
    import numpy as np

    sc = np.full(len(scores), "0", dtype=object)
    nz = np.flatnonzero(scores != 0)
    sc[nz] = ["%.7g" % x for x in scores[nz]]
    lines = [f"{t},{v},{s}" for t, v, s in zip(timestamps, values, sc)]
    dest.write_text("timestamp,value,anomaly_score\n" + "\n".join(lines) + "\n")
