"""Source-level rules: one place for Numba options, formulas in kernel docstrings."""

import re
from pathlib import Path

import pytest

import fastbp
from fastbp import kernels

PACKAGE_DIR = Path(fastbp.__file__).resolve().parent
JIT_MODULE = PACKAGE_DIR / "kernels" / "_jit.py"


def test_config_fastmath_only_set_in_jit_module():
    # Every kernel takes fastmath from _config.FASTMATH via kernels/_jit.py; a
    # literal elsewhere could bring back nnan/ninf and blind the NaN checks.
    sources = sorted(PACKAGE_DIR.rglob("*.py"))
    assert JIT_MODULE in sources
    offenders = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{lineno}: {line.strip()}"
        for path in sources
        if path != JIT_MODULE
        for lineno, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"fastmath\s*=", line)
    ]
    assert offenders == []


def test_config_fastmath_set_keeps_nan_and_inf_checks():
    from fastbp._config import FASTMATH

    assert not {"nnan", "ninf", "fast"} & set(FASTMATH)


@pytest.mark.parametrize("name", kernels.__all__)
def test_config_kernel_docstring_first_line_states_formula(name):
    doc = getattr(kernels, name).__doc__
    assert doc, f"{name} has no docstring"
    first_line = doc.strip().splitlines()[0]
    assert "=" in first_line or "True" in first_line, first_line
