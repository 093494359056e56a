"""docs/onnx.md runs as written: its shell commands in order (the benchmark
with --quick, a smoke run), its Python blocks in one namespace, all in a
fresh folder holding the repository's examples/ and benchmarks/."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "onnx.md"


def test_every_code_block_of_the_onnx_page_runs(tmp_path, monkeypatch):
    for folder in ("examples", "benchmarks"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), flags=re.S)
    assert [kind for kind, _ in blocks].count("python") >= 4
    # The commands find this environment's fastbp and python first.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = dict(os.environ, PATH=path)
    namespace: dict = {}
    for kind, code in blocks:
        assert kind in ("bash", "python"), kind
        if kind == "python":
            exec(compile(code, str(DOC), "exec"), namespace)
            continue
        for line in code.strip().splitlines():
            if line.startswith("python benchmarks/onnx_latency.py"):
                line += " --quick"
            run = subprocess.run(
                line, shell=True, capture_output=True, text=True, env=env, timeout=600
            )
            assert run.returncode == 0, f"{line}\n{run.stdout}\n{run.stderr}"
            if "onnx_latency" in line:
                assert "| onnxruntime, one input per column |" in run.stdout
