"""Grouping: when a group of alerts is notified (Alertmanager's group_wait / group_interval /
repeat_interval, on cycle times).

Alerts are routed first, then grouped: one group per (owner department, level, region,
dimension). A group's content is its firing alerts that are not muted (silenced, inhibited), with
their severities. A group is notified

* ``new``: the first time, once it has existed for ``group_wait``;
* ``update``: when its content changed (an alert joined, left, resolved or changed severity) and
  at least ``group_interval`` passed since its last notification (changes in between are
  collected into that one notification); ``resolved`` when nothing is firing any more;
* ``repeat``: unchanged but still firing, ``repeat_interval`` after its last notification.

Alerts that resolve before their group was ever notified are not notified at all.

>>> from engine.alerts.config import AlertConfig
>>> cfg = AlertConfig(group_wait=0, group_interval=1800, repeat_interval=7200)
>>> g = Group(key=("d", "street", 0, "epidemic"), first_seen=0)
>>> g.due(0, {1: 1}, cfg)
'new'
>>> g.sent_now(0, {1: 1}); g.due(900, {1: 1, 2: 2}, cfg), g.due(1800, {1: 1, 2: 2}, cfg)
(None, 'update')
>>> g.sent_now(1800, {1: 1, 2: 2}); g.due(8000, {1: 1, 2: 2}, cfg), g.due(1800 + 7200, {1: 1, 2: 2}, cfg)
(None, 'repeat')
"""

from __future__ import annotations

import dataclasses

__all__ = ["Group"]


@dataclasses.dataclass
class Group:
    """Notification timing of one group.

    Attributes
    ----------
    key : tuple
        ``(department, level, region_index, dimension)``.
    first_seen : int
        Cycle time the group first had a firing alert.
    last_sent : int or None
        Time of its last notification.
    sent : dict
        ``{alert_id: severity}`` of the firing alerts in the last notification.
    """

    key: tuple
    first_seen: int
    last_sent: int | None = None
    sent: dict = dataclasses.field(default_factory=dict)

    def due(self, now: int, firing: dict, cfg) -> str | None:
        """The reason to notify now (``new``, ``update``, ``resolved``, ``repeat``) or ``None``.

        Parameters
        ----------
        now : int
            Cycle time.
        firing : dict
            ``{alert_id: severity}`` of the group's firing, unmuted alerts now.
        cfg : AlertConfig
        """
        if self.last_sent is None:
            if firing and now - self.first_seen >= cfg.group_wait:
                return "new"
            return None
        if firing != self.sent:
            if now - self.last_sent >= cfg.group_interval:
                return "update" if firing else "resolved"
            return None
        if firing and now - self.last_sent >= cfg.repeat_interval:
            return "repeat"
        return None

    def sent_now(self, now: int, firing: dict) -> None:
        """Record a notification of ``firing`` at ``now``."""
        self.last_sent = int(now)
        self.sent = dict(firing)

    @property
    def finished(self) -> bool:
        """Nothing left to notify: the last notification had no firing alerts (or none was sent)."""
        return not self.sent

    def to_dict(self) -> dict:
        return {"key": list(self.key), "first_seen": self.first_seen, "last_sent": self.last_sent,
                "sent": [[int(k), int(v)] for k, v in self.sent.items()]}

    @classmethod
    def from_dict(cls, d: dict) -> "Group":
        return cls(key=tuple(d["key"]), first_seen=int(d["first_seen"]), last_sent=d["last_sent"],
                   sent={int(k): int(v) for k, v in d["sent"]})
