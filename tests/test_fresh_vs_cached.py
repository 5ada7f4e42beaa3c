"""A kernel compiled in the process and the same kernel loaded from numba's cache give the same floats.

Opt-in (``CITYVITALS_FRESH_CHECK=1``; ~15 s CPU: two compiled cases of ``_row_pass`` and their
caller, in a fresh cache): CI is near its time budget. numba links a copy of each non-inlined callee
into every caller and optimises it again there; a process that compiled the kernels calls the
callee's own code, one that loaded them from the cache the caller's copy (docs/testing.md, "Fresh
compile vs cached load ... (thirteenth session)"). With fast-math ``contract`` the two copies can
fuse a different product of a sum into an FMA. The check: a caller of ``_row_pass`` (its steady
and counting cases) run in a process with an empty ``NUMBA_CACHE_DIR`` (compiles, writes the cache),
then in a second process on that cache (loads it); every output compared byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.environ.get("CITYVITALS_FRESH_CHECK") != "1",
                                reason="opt-in: CITYVITALS_FRESH_CHECK=1 (compiles in a fresh cache, ~15 s CPU)")

CALLER = '''
import numpy as np
from engine.config import njit
from engine.detect.kernels import _row_pass


@njit
def caller(X, SH, seasonal, direction, is_count, clip_on, judge, hold_mode, par, L, D, S, CP, N, T, z, mu_s,
           var_s, c3_s, score, det, counted):
    for i in range(X.shape[0]):
        if counted:
            _row_pass(X[i], np.float32(SH[i]), None, False, seasonal[i], direction[i], is_count[i], 5, np.float32(1),
                      clip_on[i], False, judge[i], hold_mode[i], par, L[i], D[i], S[i], CP[i], None, N[i], False,
                      np.int32(20), T[i], z[i], mu_s[i], var_s[i], c3_s[i], score[i], det[i])
        else:
            _row_pass(X[i], np.float32(SH[i]), None, False, seasonal[i], direction[i], is_count[i], 5, np.float32(1),
                      clip_on[i], False, judge[i], hold_mode[i], par, L[i], D[i], S[i], CP[i], None, None, True,
                      np.int32(20), T[i], z[i], mu_s[i], var_s[i], c3_s[i], score[i], det[i])
'''

RUN = '''
import sys
import numpy as np
from engine.detect.params import DetectorParams
import fvc_caller

rng = np.random.default_rng(1)
R, n, f32 = 64, 300, np.float32
par = DetectorParams().vector()
L = (rng.random((R, n)) * 10).astype(f32)
D = (rng.random((R, n)) * 2).astype(f32)
S = rng.random((R, n)).astype(f32)
CP = (rng.random((R, n)) * 3).astype(f32)
N = rng.integers(0, 30, (R, n)).astype(np.int16)
T = rng.integers(0, 256, (R, n)).astype(np.uint8)
z, mu_s, var_s, c3_s, score = (np.zeros((R, n), f32) for _ in range(5))
det = np.zeros((R, n), np.int8)
seasonal, is_count, clip_on = rng.random(R) < 0.7, rng.random(R) < 0.3, rng.random(R) < 0.5
direction = rng.choice(np.array([1, -1], np.int8), R)
judge, hold_mode = rng.random(R) < 0.9, rng.integers(0, 3, R).astype(np.uint8)
out = {}
for cyc in range(6):
    X = (L + D * rng.standard_normal((R, n)) + rng.standard_t(3, (R, n))).astype(f32)
    X[rng.random((R, n)) < 0.05] = np.nan
    SH = rng.standard_normal(R).astype(f32)
    fvc_caller.caller(X, SH, seasonal, direction, is_count, clip_on, judge, hold_mode, par, L, D, S, CP, N, T, z,
                      mu_s, var_s, c3_s, score, det, cyc % 2 == 0)
    for k, a in dict(score=score, z=z, var_s=var_s, c3_s=c3_s, det=det, L=L, D=D, S=S, CP=CP).items():
        out[f"{k}{cyc}"] = a.copy()
np.savez(sys.argv[1], **out)
'''


def test_row_pass_gives_the_same_floats_compiled_fresh_and_loaded_from_the_cache(tmp_path):
    (tmp_path / "fvc_caller.py").write_text(textwrap.dedent(CALLER))
    (tmp_path / "fvc_run.py").write_text(textwrap.dedent(RUN))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    outs = []
    for name in ("fresh", "cached"):               # the first compiles into the empty cache, the second loads it
        out = tmp_path / f"{name}.npz"
        subprocess.run([sys.executable, str(tmp_path / "fvc_run.py"), str(out)], cwd=ROOT, env=env, check=True)
        outs.append(np.load(out))
    fresh, cached = outs
    assert sorted(fresh.files) == sorted(cached.files)
    differ = [k for k in fresh.files if fresh[k].tobytes() != cached[k].tobytes()]
    assert not differ, f"fresh compile and cached load differ in {differ}"
