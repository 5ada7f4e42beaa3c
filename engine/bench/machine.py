"""The hardware a benchmark run was measured on, and when two runs may be compared.

Two runs are comparable only when their :class:`Machine` is equal: same CPU model, same
number of logical cores, same memory (to the nearest GiB). The host name is *not* part
of the identity, so identical CI runners with random host names share one history; a
different CPU, core count or memory size never does.

>>> m = Machine(cpu_model="AMD EPYC 7B13", cores=2, memory_bytes=24 * 2**30)
>>> m.key
'AMD EPYC 7B13 | 2 cores | 24 GiB'
>>> m == Machine("AMD EPYC 7B13", 2, 24 * 2**30 + 2**20)   # same GiB: same machine
True
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Machine:
    """CPU model, logical cores and memory: the identity of a benchmark machine.

    Attributes
    ----------
    cpu_model : str
        CPU brand string, e.g. ``"AMD EPYC 7B13"``.
    cores : int or None
        Logical cores available to the run (``None`` when the run did not record them).
    memory_bytes : int or None
        Physical memory (``None`` when not recorded). Compared to the nearest GiB.

    Examples
    --------
    >>> Machine("Intel Xeon", None, None).label
    'Intel Xeon, ? cores, ? GiB memory'
    """

    cpu_model: str
    cores: int | None
    memory_bytes: int | None = field(compare=False)
    memory_gib: int | None = field(init=False, compare=True, repr=False)

    def __post_init__(self):
        if not isinstance(self.cpu_model, str) or not self.cpu_model.strip():
            raise ValueError(f"cpu_model must be a non-empty string, got {self.cpu_model!r}")
        if self.cores is not None and (not isinstance(self.cores, int) or self.cores < 1):
            raise ValueError(f"cores must be a positive integer or None, got {self.cores!r}")
        if self.memory_bytes is not None and (not isinstance(self.memory_bytes, int) or self.memory_bytes < 1):
            raise ValueError(f"memory_bytes must be a positive integer or None, got {self.memory_bytes!r}")
        gib = None if self.memory_bytes is None else int(round(self.memory_bytes / 2**30))
        object.__setattr__(self, "memory_gib", gib)

    @property
    def key(self) -> str:
        """Stable text identity (what the report groups runs by).

        >>> Machine("X", 4, 8 * 2**30).key
        'X | 4 cores | 8 GiB'
        """
        cores = "?" if self.cores is None else str(self.cores)
        mem = "?" if self.memory_gib is None else str(self.memory_gib)
        return f"{self.cpu_model} | {cores} cores | {mem} GiB"

    @property
    def label(self) -> str:
        """Human-readable description with memory to 0.1 GiB.

        >>> Machine("X", 4, 8 * 2**30).label
        'X, 4 cores, 8.0 GiB memory'
        """
        cores = "?" if self.cores is None else str(self.cores)
        mem = "?" if self.memory_bytes is None else f"{self.memory_bytes / 2**30:.1f}"
        return f"{self.cpu_model}, {cores} cores, {mem} GiB memory"

    @classmethod
    def from_machine_info(cls, machine_info: dict) -> "Machine":
        """The machine of a saved run, from pytest-benchmark's ``machine_info``.

        Uses the ``cityvitals`` block written by ``benchmarks/conftest.py`` when present,
        else pytest-benchmark's own ``cpu`` block (then memory is unknown, so such a run
        is never compared with one that recorded it).

        >>> Machine.from_machine_info({"cityvitals": {"cpu_model": "X", "cores": 2,
        ...                                           "memory_bytes": 2**33}}).key
        'X | 2 cores | 8 GiB'
        >>> Machine.from_machine_info({"cpu": {"brand_raw": "Y", "count": 8}}).key
        'Y | 8 cores | ? GiB'
        """
        if not isinstance(machine_info, dict):
            raise ValueError(f"machine_info must be a dict, got {type(machine_info).__name__}")
        ours = machine_info.get("cityvitals")
        if isinstance(ours, dict) and ours.get("cpu_model"):
            return cls(str(ours["cpu_model"]), _int_or_none(ours.get("cores")),
                       _int_or_none(ours.get("memory_bytes")))
        cpu = machine_info.get("cpu") if isinstance(machine_info.get("cpu"), dict) else {}
        model = cpu.get("brand_raw") or cpu.get("brand") or machine_info.get("processor") \
            or machine_info.get("machine") or "unknown CPU"
        return cls(str(model), _int_or_none(cpu.get("count")), None)


def _int_or_none(v):
    try:
        v = int(v)
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


def cpu_model() -> str:
    """The CPU brand string of this machine (``/proc/cpuinfo``, else ``platform``).

    >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
    True
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    if name:
                        return " ".join(name.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_bytes() -> int | None:
    """Physical memory of this machine in bytes (``None`` when the OS does not say).

    >>> m = memory_bytes(); m is None or m > 0
    True
    """
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def this_machine() -> Machine:
    """The :class:`Machine` this process runs on.

    >>> this_machine().cores >= 1
    True
    """
    return Machine(cpu_model(), os.cpu_count() or None, memory_bytes())


def machine_record() -> dict:
    """What ``benchmarks/conftest.py`` stores in ``machine_info["cityvitals"]``.

    >>> sorted(machine_record())[:3]
    ['cores', 'cpu_model', 'key']
    """
    import numpy

    m = this_machine()
    rec = {"cpu_model": m.cpu_model, "cores": m.cores, "memory_bytes": m.memory_bytes, "key": m.key,
           "numpy": numpy.__version__}
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    rec["usable_cores"] = affinity
    rec["numba_threads"] = int(os.environ.get("NUMBA_NUM_THREADS", m.cores or 1))
    try:
        import numba

        rec["numba"] = numba.__version__
    except ImportError:  # pragma: no cover - numba is a dependency
        rec["numba"] = None
    return rec
