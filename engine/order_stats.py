"""Order statistics by selection, for kernels that must not compile numba's sort code.

A median or MAD needs one or two order statistics, not a sorted array: Hoare's quickselect finds
them in linear time on a scratch buffer, and leaves numba's ``np.sort`` / ``np.median`` (and their
compile time) out of the kernels that call it. Used by the alert cycle's shared-shift split
(:mod:`engine.alerts.cycle`) and the indices' peer baselines (:mod:`engine.indices.kernels`).
"""

from __future__ import annotations

from engine.config import njit

__all__ = ["median_inplace", "select_inplace"]


@njit
def select_inplace(a, n, k):  # pragma: no cover - compiled
    """Reorder ``a[:n]`` (no NaN) so that ``a[k]`` holds the value a sort would put there, with
    ``a[:k] <= a[k] <= a[k+1:n]`` (Hoare's quickselect); returns ``a[k]``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    >>> float(select_inplace(a, 5, 1)), bool((a[:1] <= a[1]).all() and (a[2:] >= a[1]).all())
    (2.0, True)
    """
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
        # a[lo..j] <= pivot <= a[i..hi]; between them (if any) values equal to the pivot
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@njit
def median_inplace(a, n):  # pragma: no cover - compiled
    """The median of ``a[:n]`` (no NaN, ``n >= 1``), reordering them: the k-th value by
    quickselect, the mean of the two middle ones when ``n`` is even (what ``np.median`` gives:
    the same operands in the same order, so the same number).

    Examples
    --------
    >>> import numpy as np
    >>> float(median_inplace(np.array([4.0, 1.0, 3.0, 2.0]), 4)), float(median_inplace(np.array([3.0, 1.0, 2.0]), 3))
    (2.5, 2.0)
    """
    k = n // 2
    upper = select_inplace(a, n, k)
    if n % 2 == 1:
        return upper
    lower = a[0]
    for m in range(1, k):              # the largest of the k values below position k
        if a[m] > lower:
            lower = a[m]
    return (lower + upper) / 2
