"""Notification payloads: the JSON documents the sinks deliver, with a link-free summary.

A notification carries everything a duty officer needs without opening anything: for each alert
the indicator id and names, unit, region id and name, level, value, score, detector name,
severity, status, since when, flapping and acknowledgement; for the notification the owner
department with its contact, the recipient (``to``), the reason and a one-paragraph summary.
Text that came from elsewhere (names, comments) is carried as data, never as markup or links.

>>> a = dict(alert_id=7, status="firing", severity="critical", indicator="x.y.z", indicator_name_zh="发热",
...          indicator_name_en="Fever", unit="人次", region="N0001", region_name="民园湾社区", level="neighbourhood",
...          value=12.5, score=0.9996, detector="seasonal")
>>> summary_line(a)
'[critical] 发热 / Fever = 12.5 人次 (score 0.9996, seasonal) in 民园湾社区 (N0001)'
"""

from __future__ import annotations

import math

__all__ = ["MAX_SUMMARY_ALERTS", "fmt_number", "summary_line", "group_summary", "escalation_summary"]

#: alerts spelled out in a summary before "... and N more"
MAX_SUMMARY_ALERTS = 5


def fmt_number(x) -> str:
    """Compact text of a value (``n/a`` for missing).

    >>> fmt_number(12.0), fmt_number(0.123456), fmt_number(None), fmt_number(float("nan"))
    ('12', '0.1235', 'n/a', 'n/a')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.4g}"


def summary_line(a: dict) -> str:
    """One alert in one line of text."""
    unit = f" {a['unit']}" if a.get("unit") else ""
    score = "n/a" if a.get("score") is None else f"{a['score']:.4f}"
    return (f"[{a['status'] if a['status'] == 'resolved' else a['severity']}] {a['indicator_name_zh']} / "
            f"{a['indicator_name_en']} = {fmt_number(a.get('value'))}{unit} (score {score}, {a['detector']}) "
            f"in {a['region_name']} ({a['region']})")


def group_summary(status: str, reason: str, region_name: str, region: str, dimension: dict, department: dict,
                  firing: list[dict], resolved: list[dict]) -> str:
    """Summary of a group notification.

    >>> group_summary("resolved", "resolved", "车水街道", "S01", {"id": "epidemic", "name_zh": "疫情防控",
    ...               "name_en": "Epidemic control"}, {"name_en": "CDC"}, [], [])
    'RESOLVED: Epidemic control (疫情防控) in 车水街道 (S01) for CDC: 0 firing, 0 resolved.'
    """
    n_crit = sum(1 for a in firing if a["severity"] == "critical")
    head = (f"{status.upper()}{' (repeat)' if reason == 'repeat' else ''}: {dimension.get('name_en', dimension.get('id'))} "
            f"({dimension.get('name_zh', '')}) in {region_name} ({region}) for {department.get('name_en')}: "
            f"{len(firing)} firing{f' ({n_crit} critical)' if n_crit else ''}, {len(resolved)} resolved.")
    items = firing + resolved
    lines = [summary_line(a) for a in items[:MAX_SUMMARY_ALERTS]]
    if len(items) > MAX_SUMMARY_ALERTS:
        lines.append(f"... and {len(items) - MAX_SUMMARY_ALERTS} more")
    return " ".join([head] + [f"{line};" if k < len(lines) - 1 else line for k, line in enumerate(lines)])


def escalation_summary(a: dict, department: dict, minutes: float) -> str:
    """Summary of an escalation.

    >>> escalation_summary(dict(alert_id=3, status="firing", severity="critical", indicator_name_zh="甲",
    ...     indicator_name_en="A", value=1.0, score=0.9999, detector="count", region_name="R", region="N1"),
    ...     {"name_en": "Dept"}, 30)
    'ESCALATION: critical alert #3 unacknowledged for 30 min (Dept): [critical] 甲 / A = 1 (score 0.9999, count) in R (N1)'
    """
    return (f"ESCALATION: critical alert #{a['alert_id']} unacknowledged for {minutes:.0f} min "
            f"({department.get('name_en')}): {summary_line(a)}")
