"""The composite-index configuration (``indicators/indices.toml``), loaded and checked.

>>> cfg = load_config()
>>> [g.zh for g in cfg.grades]
['优', '良', '平稳', '较差']
>>> cfg.grade_of(85.0), cfg.grade_of(69.9)
(1, 3)
>>> [a.key for a in cfg.angles][:3]
['violent', 'property', 'fraud']
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

METHODS = ("arithmetic", "geometric")
LEVEL_WEIGHTS = ("population", "area", "equal")


class IndicesConfigError(ValueError):
    """A bad indices configuration; the message names the file, the key and what was expected."""


@dataclass(frozen=True)
class Grade:
    """One grade band: ``min <= score`` (and below the previous grade's ``min``)."""

    code: int
    key: str
    zh: str
    en: str
    min: float
    colour: str


@dataclass(frozen=True)
class Group:
    """A group of indicators matched by fnmatch patterns (a safety angle or an epidemic risk)."""

    key: str
    zh: str
    en: str
    weight: float
    match: tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    """A reference range ``[bad_lo, good_lo, good_hi, bad_hi]`` for the indicators matched."""

    match: tuple[str, ...]
    bounds: tuple[float, float, float, float]


@dataclass(frozen=True)
class IndicesConfig:
    """Everything the indices read from configuration (see ``indicators/indices.toml``)."""

    grades: tuple[Grade, ...]
    no_data: dict
    tolerance: float = 2.0
    cap: float = 5.0
    history_window: int = 96
    history_min: int = 4
    peers_min: int = 5
    scale_floor_rel: float = 0.05
    scale_floor_abs: float = 1e-6
    references: tuple[Reference, ...] = ()
    method: str = "arithmetic"
    geometric_floor: float = 0.01
    dimension_weights: dict = field(default_factory=dict)
    domain_weights: dict = field(default_factory=dict)
    level_weight: str = "population"
    draws: int = 200
    seed: int = 0
    weight_jitter: float = 0.25
    mc_methods: tuple[str, ...] = METHODS
    rank_interval: tuple[float, float] = (0.05, 0.95)
    stable_probability: float = 0.8
    safety: dict = field(default_factory=dict)
    angles: tuple[Group, ...] = ()
    epidemic: tuple[Group, ...] = ()
    source: str = "<defaults>"

    # ------------------------------------------------------------------ grades
    @property
    def grade_mins(self) -> np.ndarray:
        """Lower bounds of the grades, best first (float64)."""
        return np.array([g.min for g in self.grades], dtype=np.float64)

    def grade_of(self, score: float) -> int:
        """Grade code of one score (-1 for NaN).

        Examples
        --------
        >>> load_config().grade_of(float("nan"))
        -1
        """
        return int(grade_codes(np.array([score]), self.grade_mins)[0])

    def with_(self, **changes) -> "IndicesConfig":
        """A copy with some fields replaced (e.g. ``cfg.with_(method="geometric")``).

        Examples
        --------
        >>> load_config().with_(method="geometric").method
        'geometric'
        """
        if "method" in changes and changes["method"] not in METHODS:
            raise IndicesConfigError(f"method must be one of {', '.join(METHODS)}, got {changes['method']!r}")
        return replace(self, **changes)


def grade_codes(score: np.ndarray, mins: np.ndarray) -> np.ndarray:
    """Grade code per score (0 = best), -1 where the score is NaN.

    Examples
    --------
    >>> grade_codes(np.array([95.0, 90.0, 89.9, 70.0, 12.0, np.nan]), np.array([90.0, 80.0, 70.0, 0.0]))
    array([ 0,  0,  1,  2,  3, -1], dtype=int8)
    """
    s = np.asarray(score, dtype=np.float64)
    out = np.full(s.shape, -1, dtype=np.int8)
    ok = np.isfinite(s)
    # mins are descending; count how many bounds the score does NOT reach (a binary search)
    asc = np.asarray(mins, dtype=np.float64)[::-1]
    codes = len(asc) - np.searchsorted(asc, s, side="right")
    codes = np.minimum(codes, len(mins) - 1)
    out[ok] = np.asarray(codes)[ok]
    return out


def default_path() -> Path:
    """The bundled configuration, ``indicators/indices.toml``."""
    from engine.catalog import bundled_path

    return bundled_path() / "indices.toml"


def _num(src: str, where: str, v, lo: float = -math.inf, hi: float = math.inf, *, integer: bool = False):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if ok and integer:
        ok = float(v).is_integer()
    if not ok or not (lo <= float(v) <= hi):
        kind = "an integer" if integer else "a number"
        raise IndicesConfigError(f"{src}: {where} must be {kind} in [{lo}, {hi}], got {v!r}")
    return int(v) if integer else float(v)


def _text(src: str, where: str, v) -> str:
    if not isinstance(v, str) or not v.strip():
        raise IndicesConfigError(f"{src}: {where} must be a non-empty string, got {v!r}")
    return v


def _patterns(src: str, where: str, v) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(p, str) and p for p in v):
        raise IndicesConfigError(f"{src}: {where}.match must be a non-empty list of id patterns, got {v!r}")
    return tuple(v)


def _groups(src: str, where: str, items) -> tuple[Group, ...]:
    if not isinstance(items, list):
        raise IndicesConfigError(f"{src}: {where} must be an array of tables")
    out, seen = [], set()
    for n, it in enumerate(items):
        w = f"{where}[{n}]"
        key = _text(src, f"{w}.key", it.get("key"))
        if key in seen:
            raise IndicesConfigError(f"{src}: {w}.key {key!r} is used twice")
        seen.add(key)
        out.append(Group(key, _text(src, f"{w}.zh", it.get("zh", key)), _text(src, f"{w}.en", it.get("en", key)),
                         _num(src, f"{w}.weight", it.get("weight", 1.0), 0.0), _patterns(src, w, it.get("match"))))
    return tuple(out)


def _reference(src: str, where: str, it: dict) -> Reference:
    match = _patterns(src, where, it.get("match"))
    if "target" in it:
        t = _num(src, f"{where}.target", it["target"])
        tol = _num(src, f"{where}.tolerance", it.get("tolerance", 0.0), 0.0)
        lim = _num(src, f"{where}.limit", it.get("limit"), 0.0)
        if not lim > tol:
            raise IndicesConfigError(f"{src}: {where}.limit must be greater than tolerance ({tol}), got {lim}")
        return Reference(match, (t - lim, t - tol, t + tol, t + lim))
    good, bad = it.get("good"), it.get("bad")
    for name, v in (("good", good), ("bad", bad)):
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
            raise IndicesConfigError(f"{src}: {where}.{name} must be [low, high] (nan for an open side), got {v!r}")
    b = (float(bad[0]), float(good[0]), float(good[1]), float(bad[1]))
    if all(math.isnan(x) for x in b):
        raise IndicesConfigError(f"{src}: {where} bounds every side with nan; give at least one side")
    for lo_name, lo, hi_name, hi in (("bad low", b[0], "good low", b[1]), ("good high", b[2], "bad high", b[3])):
        if not (math.isnan(lo) or math.isnan(hi)) and not lo < hi:
            raise IndicesConfigError(f"{src}: {where} needs {lo_name} < {hi_name}, got {lo} and {hi}")
    if math.isnan(b[0]) != math.isnan(b[1]) or math.isnan(b[2]) != math.isnan(b[3]):
        raise IndicesConfigError(f"{src}: {where}: a side needs both its good and its bad bound (or neither)")
    return Reference(match, b)


def parse_config(data: dict, source: str = "<dict>") -> IndicesConfig:
    """Build an :class:`IndicesConfig` from a parsed TOML table.

    Raises
    ------
    IndicesConfigError
        Naming the source, the key and what was expected.

    Examples
    --------
    >>> cfg = parse_config({"grades": [{"key": "ok", "min": 50, "colour": "#00ff00"},
    ...                                {"key": "bad", "min": 0, "colour": "#ff0000"}]})
    >>> cfg.grade_of(60.0), cfg.method
    (0, 'arithmetic')
    """
    src = source
    raw_grades = data.get("grades")
    if not isinstance(raw_grades, list) or len(raw_grades) < 2:
        raise IndicesConfigError(f"{src}: [[grades]] must list at least two grades, best first")
    grades = []
    for n, g in enumerate(raw_grades):
        w = f"grades[{n}]"
        key = _text(src, f"{w}.key", g.get("key"))
        grades.append(Grade(n, key, _text(src, f"{w}.zh", g.get("zh", key)), _text(src, f"{w}.en", g.get("en", key)),
                            _num(src, f"{w}.min", g.get("min"), 0.0, 100.0), _text(src, f"{w}.colour", g.get("colour"))))
    mins = [g.min for g in grades]
    if any(a <= b for a, b in zip(mins, mins[1:])) or mins[-1] != 0:
        raise IndicesConfigError(f"{src}: grade minimums must strictly decrease, best first, ending at 0; got {mins}")
    nd = data.get("no_data", {})
    no_data = {"zh": nd.get("zh", "无数据"), "en": nd.get("en", "No data"), "colour": nd.get("colour", "#bdbdbd")}

    norm = data.get("normalisation", {})
    kw: dict = {}
    kw["tolerance"] = _num(src, "normalisation.tolerance", norm.get("tolerance", 2.0), 0.0)
    kw["cap"] = _num(src, "normalisation.cap", norm.get("cap", 5.0), 0.0)
    if not kw["cap"] > kw["tolerance"]:
        raise IndicesConfigError(f"{src}: normalisation.cap must exceed tolerance ({kw['tolerance']}), got {kw['cap']}")
    kw["history_window"] = _num(src, "normalisation.history_window", norm.get("history_window", 96), 1, integer=True)
    kw["history_min"] = _num(src, "normalisation.history_min", norm.get("history_min", 4), 1, integer=True)
    kw["peers_min"] = _num(src, "normalisation.peers_min", norm.get("peers_min", 5), 1, integer=True)
    kw["scale_floor_rel"] = _num(src, "normalisation.scale_floor_rel", norm.get("scale_floor_rel", 0.05), 0.0)
    kw["scale_floor_abs"] = _num(src, "normalisation.scale_floor_abs", norm.get("scale_floor_abs", 1e-6), 0.0)
    if kw["scale_floor_abs"] <= 0:
        raise IndicesConfigError(f"{src}: normalisation.scale_floor_abs must be > 0")
    kw["references"] = tuple(_reference(src, f"reference[{n}]", it) for n, it in enumerate(data.get("reference", [])))

    agg = data.get("aggregation", {})
    method = agg.get("method", "arithmetic")
    if method not in METHODS:
        raise IndicesConfigError(f"{src}: aggregation.method must be one of {', '.join(METHODS)}, got {method!r}")
    kw["method"] = method
    kw["geometric_floor"] = _num(src, "aggregation.geometric_floor", agg.get("geometric_floor", 0.01), 1e-12, 1.0)
    weights = data.get("weights", {})
    for part, name in (("dimensions", "dimension_weights"), ("domains", "domain_weights")):
        table = weights.get(part, {})
        kw[name] = {k: _num(src, f"weights.{part}.{k}", v, 0.0) for k, v in table.items()}

    lv = data.get("levels", {}).get("weight", "population")
    if lv not in LEVEL_WEIGHTS:
        raise IndicesConfigError(f"{src}: levels.weight must be one of {', '.join(LEVEL_WEIGHTS)}, got {lv!r}")
    kw["level_weight"] = lv

    rb = data.get("robustness", {})
    kw["draws"] = _num(src, "robustness.draws", rb.get("draws", 200), 1, 1_000_000, integer=True)
    kw["seed"] = _num(src, "robustness.seed", rb.get("seed", 0), 0, integer=True)
    kw["weight_jitter"] = _num(src, "robustness.weight_jitter", rb.get("weight_jitter", 0.25), 0.0, 0.99)
    methods = tuple(rb.get("methods", METHODS))
    if not methods or any(m not in METHODS for m in methods):
        raise IndicesConfigError(f"{src}: robustness.methods must be a non-empty subset of {list(METHODS)}, got {list(methods)}")
    kw["mc_methods"] = methods
    ri = rb.get("rank_interval", [0.05, 0.95])
    if not (isinstance(ri, list) and len(ri) == 2 and 0 <= ri[0] < ri[1] <= 1):
        raise IndicesConfigError(f"{src}: robustness.rank_interval must be [low, high] quantiles with 0 <= low < high <= 1, got {ri!r}")
    kw["rank_interval"] = (float(ri[0]), float(ri[1]))
    kw["stable_probability"] = _num(src, "robustness.stable_probability", rb.get("stable_probability", 0.8), 0.0, 1.0)

    si = data.get("safety_index", {})
    kw["safety"] = {"zh": si.get("zh", "平安指数"), "en": si.get("en", "Safety index")}
    kw["angles"] = _groups(src, "safety_index.angles", si.get("angles", []))
    kw["epidemic"] = _groups(src, "epidemic", data.get("epidemic", []))
    return IndicesConfig(grades=tuple(grades), no_data=no_data, source=src, **kw)


def load_config(path: str | Path | None = None) -> IndicesConfig:
    """Read and check an indices configuration (default: the bundled ``indicators/indices.toml``).

    Parameters
    ----------
    path : str or Path, optional
        A TOML file with the layout of ``indicators/indices.toml``.

    Returns
    -------
    IndicesConfig

    Examples
    --------
    >>> load_config().method
    'arithmetic'
    """
    p = Path(path) if path is not None else default_path()
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise IndicesConfigError(f"indices configuration {str(p)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise IndicesConfigError(f"{p.name}: not valid TOML: {exc}") from None
    return parse_config(data, p.name)


def resolve_config(config) -> IndicesConfig:
    """``None`` -> bundled config; a path -> loaded; an :class:`IndicesConfig` -> itself."""
    if config is None:
        return load_config()
    if isinstance(config, IndicesConfig):
        return config
    if isinstance(config, dict):
        return parse_config(config)
    return load_config(config)
