"""Alert lifecycle: pending -> firing -> resolved over score arrays, with hysteresis, severities,
flap damping, grouping, inhibition, silences, acknowledgements, routing to the owner department,
escalation, and sinks (JSONL, SQLite history, webhook with an outbox).

Modules: :mod:`~engine.alerts.config` (settings, time parsing), :mod:`~engine.alerts.state` and
:mod:`~engine.alerts.lifecycle` (the vectorised state machine and its reference),
:mod:`~engine.alerts.regions` (levels and containment), :mod:`~engine.alerts.routing`,
:mod:`~engine.alerts.grouping`, :mod:`~engine.alerts.silences`,
:mod:`~engine.alerts.notifications` (payloads), :mod:`~engine.alerts.store` (SQLite),
:mod:`~engine.alerts.sinks`, :mod:`~engine.alerts.manager`. See ``docs/alerts.md``.

>>> from engine.alerts import AlertConfig
>>> AlertConfig().clear_level < AlertConfig().fire_level
True
"""

from engine.alerts.config import AlertConfig, iso, parse_duration, to_epoch
from engine.alerts.manager import AlertManager, CycleResult
from engine.alerts.silences import Silence, parse_expiry
from engine.alerts.sinks import JsonlSink, Sink, WebhookSink
from engine.alerts.store import AlertStore

__all__ = ["AlertConfig", "AlertManager", "AlertStore", "CycleResult", "JsonlSink", "Silence", "Sink", "WebhookSink",
           "iso", "parse_duration", "parse_expiry", "to_epoch"]
