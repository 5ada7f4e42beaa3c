"""Age-specific contact matrices by location (Prem, Cook & Jit 2017, China), shipped as package data.

The four locations are ``home``, ``work``, ``school`` and ``other`` (the CSV files call the last one
``others``). ``C[i, j]`` is the mean number of daily contacts a person of age band ``i`` (the row,
the respondent) has with people of age band ``j``. The shipped ``all`` matrix equals the sum of the
four to 1e-9.

Reopening is modelled as in Prem et al. (2020): a multiplier per location (optionally per respondent
age band) on the location's matrix, ``C(t) = sum_loc diag(m_loc(t)) @ C_loc``.

Which matrices reproduce Prem et al.'s figures
---------------------------------------------
The ratios of spectral radii quoted for the Wuhan interventions (lockdown 0.2456 of the full mixing;
staggered return to work 0.2909, 0.3741, 0.5172) are reproduced by the **unsymmetrised** matrices
with home 1, school 0, other 0.1 and work 0.1 / 0.25 / 0.5 / 0.9. Prem et al.'s symmetrised
matrices (:func:`symmetrise`) give 0.2482, 0.2925, 0.3742, 0.5154 instead. Prem et al.'s code simulates with the
unsymmetrised matrices and only uses the symmetrised ``all`` matrix to turn R0 into beta; the
engine uses the unsymmetrised matrices throughout, and :mod:`engine.sim.prem` follows the paper's
code exactly (see there).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

LOCATIONS = ("home", "work", "school", "other")
"""Contact locations, in the order used by every array with a location axis."""

AGE_BANDS = (
    "0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39",
    "40-44", "45-49", "50-54", "55-59", "60-64", "65-69", "70-74", "75+",
)
"""The 16 five-year age bands of the contact matrices (the last one open)."""

N_AGE = len(AGE_BANDS)

_FILES = {"home": "home", "work": "work", "school": "school", "other": "others", "all": "all"}


def _read_csv_matrix(name: str) -> np.ndarray:
    text = resources.files("engine").joinpath("data", "prem", f"contacts_china_{name}.csv").read_text()
    rows = [line.split(",") for line in text.strip().splitlines()[1:]]
    return np.array([[float(v) for v in row[1:]] for row in rows], dtype=np.float64)


@lru_cache(maxsize=None)
def _china_cached() -> tuple[np.ndarray, ...]:
    return tuple(_read_csv_matrix(_FILES[k]) for k in (*LOCATIONS, "all"))


@dataclass(frozen=True)
class ContactMatrices:
    """Four 16x16 location matrices (home, work, school, other) as one ``(4, 16, 16)`` array.

    Attributes
    ----------
    by_location : numpy.ndarray
        ``(4, n_age, n_age)`` float64, locations in :data:`LOCATIONS` order.

    Examples
    --------
    >>> cm = ContactMatrices.china()
    >>> cm.by_location.shape
    (4, 16, 16)
    >>> round(spectral_radius(cm.total()), 3)
    13.839
    """

    by_location: np.ndarray

    def __post_init__(self):
        arr = np.asarray(self.by_location, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[0] != 4 or arr.shape[1] != arr.shape[2]:
            raise ValueError(f"contact matrices must have shape (4, n_age, n_age), got {arr.shape}")
        if not np.all(np.isfinite(arr)) or (arr < 0).any():
            raise ValueError("contact matrices must be finite and non-negative")
        object.__setattr__(self, "by_location", arr)

    @property
    def n_age(self) -> int:
        return self.by_location.shape[1]

    @classmethod
    def china(cls) -> "ContactMatrices":
        """The China matrices of Prem et al. (2017), as shipped in ``engine/data/prem``."""
        return cls(np.stack(_china_cached()[:4]))

    @classmethod
    def homogeneous(cls, contacts: float, age_share, split=(0.25, 0.25, 0.25, 0.25)) -> "ContactMatrices":
        """Proportionate (homogeneous) mixing: ``C_loc[i, j] = contacts * split[loc] * age_share[j]``.

        Every person has ``contacts`` daily contacts, spread over age bands in proportion to the
        population, so the age structure plays no part (the classic one-group SEIR).

        >>> cm = ContactMatrices.homogeneous(10.0, np.full(16, 1 / 16))
        >>> float(cm.total().sum(axis=1)[0])
        10.0
        """
        share = np.asarray(age_share, dtype=np.float64)
        split = np.asarray(split, dtype=np.float64)
        if share.ndim != 1 or (share < 0).any() or not np.isclose(share.sum(), 1.0):
            raise ValueError(f"age_share must be non-negative and sum to 1, got sum {share.sum()}")
        if split.shape != (4,) or (split < 0).any() or not np.isclose(split.sum(), 1.0):
            raise ValueError(f"split must be 4 non-negative shares summing to 1, got {split.tolist()}")
        row = contacts * share
        return cls(split[:, None, None] * np.broadcast_to(row, (share.size, share.size))[None])

    def total(self) -> np.ndarray:
        """Sum over the four locations (the ``all`` matrix)."""
        return self.by_location.sum(axis=0)

    def mixing(self, home=1.0, work=1.0, school=1.0, other=1.0) -> np.ndarray:
        """``sum_loc diag(m_loc) @ C_loc``; each multiplier a scalar or one value per age band.

        >>> cm = ContactMatrices.china()
        >>> lock = cm.mixing(work=0.1, school=0.0, other=0.1)
        >>> round(spectral_radius(lock) / spectral_radius(cm.total()), 4)
        0.2456
        """
        out = np.zeros((self.n_age, self.n_age))
        for k, m in enumerate((home, work, school, other)):
            m = np.broadcast_to(np.asarray(m, dtype=np.float64), (self.n_age,))
            if (m < 0).any():
                raise ValueError(f"multiplier for {LOCATIONS[k]} must be >= 0, got {m.min()}")
            out += m[:, None] * self.by_location[k]
        return out


def china_all() -> np.ndarray:
    """The shipped ``all`` matrix (equal to the sum of the four locations to 1e-9)."""
    return _china_cached()[4].copy()


def symmetrise(c: np.ndarray, population) -> np.ndarray:
    """Prem et al.'s "reciprocal" matrix, verbatim from their code: ``(C_ij + C_ji * p_i / p_j) / 2``.

    ``p`` is the population by age band. Note that this is what their ``getbeta`` uses to turn R0
    into beta; it is not exactly reciprocal (``N_i S_ij = N_j S_ji`` would need ``p_j / p_i``).
    Kept because reproducing their beta needs it.

    >>> cm = ContactMatrices.china()
    >>> round(spectral_radius(symmetrise(cm.total(), wuhan_population())), 4)
    14.2743
    """
    c = np.asarray(c, dtype=np.float64)
    p = np.asarray(population, dtype=np.float64)
    if p.shape != (c.shape[0],) or (p <= 0).any():
        raise ValueError(f"population must be {c.shape[0]} positive numbers, got shape {p.shape}")
    return (c + c.T * (p[:, None] / p[None, :])) / 2.0


def spectral_radius(m: np.ndarray) -> float:
    """Largest absolute eigenvalue of a square matrix.

    >>> spectral_radius(np.array([[2.0, 0.0], [0.0, -3.0]]))
    3.0
    """
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"spectral_radius needs a square matrix, got shape {m.shape}")
    return float(np.max(np.abs(np.linalg.eigvals(m))))


@lru_cache(maxsize=None)
def _wuhan_cached() -> np.ndarray:
    text = resources.files("engine").joinpath("data", "prem", "wuhanpop.csv").read_text()
    rows = [line.split(",") for line in text.strip().splitlines()[1:]]
    return np.array([float(r[1]) for r in rows], dtype=np.float64)


def wuhan_population() -> np.ndarray:
    """Wuhan population by the 16 age bands (N = 10,766,200), from ``wuhanpop.csv``.

    >>> int(wuhan_population().sum())
    10766200
    """
    return _wuhan_cached().copy()
