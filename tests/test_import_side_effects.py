"""Importing fastbp, and defining its kernels, changes no process-wide setting:
Numba's configuration, Numba's and every BLAS's thread count, Numba's cache
locators and the environment are the same before and after."""

import json
import os
import subprocess
import sys

SCRIPT = """
import json, os
import numba
import scipy.linalg.cython_blas  # the BLAS kernels call, loaded up front
import threadpoolctl
from numba.core import caching


def snapshot():
    config = {
        name: repr(getattr(numba.config, name))
        for name in dir(numba.config)
        if name.isupper()
    }
    return {
        "config": config,
        "numba_threads": numba.get_num_threads(),
        "blas_threads": [
            [info["filepath"], info["num_threads"]]
            for info in threadpoolctl.threadpool_info()
        ],
        "locators": [repr(c) for c in caching.CacheImpl._locator_classes],
        "environ": dict(os.environ),
    }


before = snapshot()
import fastbp
import fastbp.bench.suite
after_import = snapshot()
import numpy as np
x = np.array([-1.0, 2.0], np.float32)
y = np.empty_like(x)
fastbp.kernels.relu_forward(x, y)  # compiles (or loads) a kernel
after_call = snapshot()
print(json.dumps([before, after_import, after_call]))
"""


def _snapshots(env):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _assert_same(before, after):
    for key in before:
        assert after[key] == before[key], key


def test_import_changes_no_global_setting(tmp_path):
    env = dict(os.environ, FASTBP_CACHE_DIR=str(tmp_path / "cache"))
    before, after_import, after_call = _snapshots(env)
    _assert_same(before, after_import)
    _assert_same(before, after_call)


def test_import_keeps_a_user_numba_cache_dir(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    env.pop("FASTBP_CACHE_DIR", None)
    before, after_import, after_call = _snapshots(env)
    assert before["config"]["CACHE_DIR"] == repr(str(tmp_path / "numba"))
    _assert_same(before, after_import)
    _assert_same(before, after_call)
