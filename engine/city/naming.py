"""Ids (``N0001``, ``S01``, ``G000001``...) and Chinese-style place names for generated cities."""

from __future__ import annotations

import numpy as np


_SYLLABLES = list("江汉长春新华兴永安和平福康宁德惠民建胜利光明东西南北中大黄花桥湖山水岸滨台园堤塘丹百球车沙塔云")
_SUFFIXES = list("里村苑园坊路街湾台门庄城府居畔巷桥林港湖")


def _ids(prefix: str, n: int, width: int) -> list[str]:
    w = max(width, len(str(n)))
    return [f"{prefix}{i:0{w}d}" for i in range(1, n + 1)]


def _names(rng: np.random.Generator, n: int, suffix_pool: list[str] | None, tail: str) -> list[str]:
    """``n`` distinct Chinese-style place names: two syllables (+ a suffix) + ``tail``."""
    pairs = [a + b for a in _SYLLABLES for b in _SYLLABLES if a != b]
    pool = [p + x for p in pairs for x in suffix_pool] if suffix_pool else pairs
    if n <= len(pool):
        pick = rng.choice(len(pool), size=n, replace=False)
        return [pool[k] + tail for k in pick.tolist()]
    pick = rng.integers(0, len(pool), size=n)
    seen: dict[str, int] = {}
    out = []
    for k in pick.tolist():
        base = pool[k]
        seen[base] = seen.get(base, 0) + 1
        out.append(f"{base}{tail}" if seen[base] == 1 else f"{base}{seen[base]}{tail}")
    return out
