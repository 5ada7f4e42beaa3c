"""One alert per subject and region: fold correlated indicators before the lifecycle.

The catalog expands one *subject* (``domain.dimension.subject``, e.g.
``safety.epidemic.fever_clinic_visits``) into several indicators -- counts over 1 h / 6 h / 24 h,
a rate per 10,000 residents, a share, a ratio to last week. When the subject moves, they all move
together; an operations centre wants one alert "fever clinic visits in N0007", not six. With
``AlertConfig(alert_per="subject")`` (the default) the manager folds each cycle's scores to one
row per subject -- the highest score of its indicators, with the detector, value and id of the
indicator that drove it (the *lead*) -- and runs the lifecycle on those rows.

With ``alert_windows="shortest"`` (the default) only the indicators at the subject's shortest
window drive its alert: the longer windows of the same subject (24 h, 7 d sums and means) are
smoothed, lagging copies of it -- an acute change shows first in the short window, and their
residuals are autocorrelated over the whole window, so they would keep an alert up (or raise one
on a slow drift) long after the short window has settled. They still feed indices and reports.

>>> import numpy as np
>>> f = Fold(["a.b.x.count_1h", "a.b.x.count_24h", "a.b.y.mean_1h"])
>>> f.n_rows, f.subjects
(2, ['a.b.x', 'a.b.y'])
>>> s = np.array([[0.2, 0.995], [0.999, np.nan], [np.nan, np.nan]], np.float32)
>>> d = np.array([[1, 3], [2, 0], [0, 0]], np.int8)
>>> v = np.array([[1., 2.], [3., 4.], [5., 6.]], np.float32)
>>> fs, fd, fv, lead = f.apply(s, d, v)
>>> fs.tolist(), fd.tolist(), lead.tolist()
([[0.9990000128746033, 0.9950000047683716], [nan, nan]], [[2, 3], [0, 0]], [[1, 0], [2, 2]])
"""

from __future__ import annotations

import numpy as np

from engine.config import njit

__all__ = ["Fold", "subject_of"]


def subject_of(indicator_id: str) -> str:
    """The subject of an indicator id: its first three dot-separated parts.

    >>> subject_of("safety.epidemic.fever_clinic_visits.per10k_24h")
    'safety.epidemic.fever_clinic_visits'
    """
    parts = str(indicator_id).split(".")
    return ".".join(parts[:3]) if len(parts) > 3 else str(indicator_id)


@njit
def _fold_kernel(score, det, value, ptr, members, out_s, out_d, out_v, out_lead):  # pragma: no cover - compiled
    """Per subject row and region: the max score over the members (NaN only if all NaN), its code,
    value and member; ties go to the first member in catalog order.

    Members outer, regions inner: each pass reads one contiguous score row (the regions of a
    series were strided by a row's length when the members were the inner loop)."""
    n_rows = ptr.shape[0] - 1
    n_reg = score.shape[1]
    for g in range(n_rows):
        a, b = ptr[g], ptr[g + 1]
        first = members[a]
        for r in range(n_reg):
            out_s[g, r] = score[first, r]
            out_lead[g, r] = first
        for m in range(a + 1, b):
            i = members[m]
            for r in range(n_reg):
                x = score[i, r]
                best = out_s[g, r]
                # replace when x is a number and the best so far is not >= it (NaN best: replaced)
                if x == x and not (best >= x):
                    out_s[g, r] = x
                    out_lead[g, r] = i
        for r in range(n_reg):
            lead = out_lead[g, r]
            out_d[g, r] = det[lead, r]
            out_v[g, r] = value[lead, r]


class Fold:
    """Map indicator rows to subject rows (``alert_per="subject"``) or to themselves (``"indicator"``).

    Parameters
    ----------
    ids : list of str
        Indicator ids in score-row order.
    per : {"subject", "indicator"}
    """

    def __init__(self, ids, per: str = "subject", windows=None):
        if per not in ("subject", "indicator"):
            raise ValueError(f"alert_per must be 'subject' or 'indicator', got {per!r}")
        self.per = per
        ids = list(ids)
        keys = [subject_of(i) if per == "subject" else i for i in ids]
        order: dict[str, int] = {}
        row = np.empty(len(ids), np.int64)
        for k, key in enumerate(keys):
            row[k] = order.setdefault(key, len(order))
        self.subjects = list(order)
        self.row_of = row
        use = np.ones(len(ids), bool)
        if windows is not None and per == "subject":
            from engine.catalog.vocab import window_minutes

            w = np.array([window_minutes(x) if x else 0 for x in windows], np.int64)
            shortest = np.full(len(self.subjects), np.iinfo(np.int64).max)
            np.minimum.at(shortest, row, w)
            use = w == shortest[row]
        #: indicators that drive their row's alert (the others never do)
        self.drives = use
        self.identity = per == "indicator" or (len(self.subjects) == len(ids) and bool(use.all()))
        members = np.flatnonzero(use)
        self.members = members[np.argsort(row[members], kind="stable")].astype(np.int64)
        self.ptr = np.zeros(len(self.subjects) + 1, np.int64)
        np.cumsum(np.bincount(row[members], minlength=len(self.subjects)), out=self.ptr[1:])

    @property
    def n_rows(self) -> int:
        return len(self.subjects)

    def apply(self, score, detector, value, out: dict | None = None):
        """Fold (n_indicators, n_regions) arrays to (n_rows, n_regions): score, detector, value, lead.

        ``out``: a dict kept by the caller (one per level); its arrays are reused from one call to
        the next when shapes and dtypes match (the results of the previous call are overwritten).
        ``lead`` is int32 (an indicator row).
        """
        n_reg = score.shape[1]
        shape = (self.n_rows, n_reg)
        dts = (np.float32 if score.dtype == np.float32 else np.float64, detector.dtype, value.dtype, np.int32)
        bufs = None if out is None else out.get("fold")
        if bufs is None or bufs[0].shape != shape or tuple(b.dtype for b in bufs) != tuple(np.dtype(d) for d in dts):
            bufs = tuple(np.empty(shape, d) for d in dts)
            if out is not None:
                out["fold"] = bufs
        _fold_kernel(score, detector, value, self.ptr, self.members, *bufs)
        return bufs
