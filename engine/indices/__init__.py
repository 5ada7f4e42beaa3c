"""Composite health and risk indices (城市体检 scores), drill-down and robustness.

Follows the OECD/JRC Handbook on Constructing Composite Indicators: direction-aware
normalisation against each series' baseline (or reference ranges / targets), winsorised;
documented imputation (flagged, never silently zero); catalog weights; arithmetic or geometric
aggregation indicator -> dimension -> domain -> overall; a safety index from 8 angles; the three
epidemic risks; grades from configuration; a Monte Carlo over weights and aggregation method.
The rules are described in docs/indices.md.

>>> from engine.indices import compute_indices, explain, robustness, load_config
>>> load_config().grades[0].zh
'优'
"""

from __future__ import annotations

from engine.indices.compute import IndexPlan, compute_indices, select_time
from engine.indices.config import IndicesConfig, IndicesConfigError, grade_codes, load_config
from engine.indices.explain import Explanation, explain
from engine.indices.robustness import robustness

__all__ = ["compute_indices", "IndexPlan", "explain", "Explanation", "robustness", "load_config", "IndicesConfig",
           "IndicesConfigError", "grade_codes", "select_time"]
