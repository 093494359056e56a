"""Where compiled kernels are cached, that an edit to any kernel file leaves no
stale machine code behind, and that fastbp works when nothing is writable (an
installed, read-only package with a read-only home)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import fastbp

PACKAGE_DIR = Path(fastbp.__file__).resolve().parent

SCRIPT = """
import warnings
warnings.simplefilter("always")
import numpy as np
import fastbp.kernels as k
from fastbp.kernels import _jit
x = np.array([-1.0, 2.0], np.float32)
y = np.empty_like(x)
k.relu_forward(x, y)
print(_jit.CACHE_DIR, y.tolist())
"""


def _run(env_overrides, cwd, script=SCRIPT, pythonpath=None):
    unset = ("FASTBP_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(env_overrides)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cache_goes_to_fastbp_cache_dir_keyed_by_source_hash(tmp_path):
    proc = _run({"FASTBP_CACHE_DIR": str(tmp_path / "cache")}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    cache_dir, values = proc.stdout.split(" ", 1)
    assert os.path.dirname(cache_dir) == str(tmp_path / "cache")
    assert values.strip() == "[0.0, 2.0]"
    # Numba puts each source directory's files in a sub-directory of CACHE_DIR.
    names = [p.name for p in Path(cache_dir).glob("kernels_*/*.nbi")]
    assert any(n.startswith("activations.relu_") for n in names), names


def test_cache_follows_numba_cache_dir(tmp_path):
    proc = _run({"NUMBA_CACHE_DIR": str(tmp_path / "numba")}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(tmp_path / "numba" / "fastbp"))


def test_cache_unwritable_everywhere_still_computes_with_a_warning(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    proc = _run(
        {
            "FASTBP_CACHE_DIR": str(blocked / "cache"),
            "XDG_CACHE_HOME": str(blocked / "xdg"),
            "HOME": str(blocked),
        },
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(" ", 1) == ["None", "[0.0, 2.0]\n"]
    assert "no writable cache directory" in proc.stderr


HELPER = """
from ._jit import kernel


@kernel
def helper():
    return {value}
"""

CALLER = """
from ._jit import kernel
from .zz_helper import helper


@kernel
def caller():
    return helper()
"""

CALL = """
from fastbp.kernels.zz_caller import caller
print(caller(), caller.stats.cache_hits.total())
"""


def test_cache_edit_in_another_kernel_file_is_not_stale(tmp_path):
    # numba #1833: Numba alone keys a cached function on its own file only, so
    # caller() would keep returning the helper's old value after the edit.
    copy = tmp_path / "src" / "fastbp"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    kernels = copy / "kernels"
    (kernels / "zz_caller.py").write_text(CALLER)
    env = {"FASTBP_CACHE_DIR": str(tmp_path / "cache")}
    results = []
    for value in (1, 1, 2):
        (kernels / "zz_helper.py").write_text(HELPER.format(value=value))
        proc = _run(env, tmp_path, CALL, pythonpath=copy.parent)
        assert proc.returncode == 0, proc.stderr
        results.append(proc.stdout.split())
    # Compiled, then loaded from the cache, then compiled afresh after the edit.
    assert results == [["1", "0"], ["1", "1"], ["2", "0"]]


def test_cache_kernels_outside_numba_default_locations(tmp_path):
    # The cache never lands in the package's __pycache__ (read-only when
    # installed) nor in Numba's user-wide directory.
    copy = tmp_path / "src" / "fastbp"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path / "home"
    home.mkdir()
    proc = _run({"HOME": str(home)}, tmp_path, pythonpath=copy.parent)
    assert proc.returncode == 0, proc.stderr
    cache_dir = proc.stdout.split(" ", 1)[0]
    assert Path(cache_dir).parent == home / ".cache" / "fastbp"
    nbi = list(tmp_path.rglob("*.nbi"))
    assert nbi and all(Path(cache_dir) in p.parents for p in nbi)
