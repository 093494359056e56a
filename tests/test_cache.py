"""Where compiled kernels are cached, and that fastbp works when nothing is
writable (an installed, read-only package with a read-only home)."""

import os
import subprocess
import sys

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


def _run(env_overrides, tmp_path):
    unset = ("FASTBP_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=tmp_path,
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
    names = os.listdir(cache_dir)
    assert any(
        n.startswith("activations.relu_forward") and n.endswith(".nbi") for n in names
    )


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
