"""Every page of docs/ (and the README) runs as written.

For each page, in a fresh folder that holds links to the repository's
``examples/`` and ``benchmarks/``, the code blocks run in the order of the
page:

- a ```python block is executed in-process, in one namespace per page, so a
  later block uses what an earlier one defined;
- a ```bash block is run line by line, each line by itself with ``bash -c``
  in that folder (a line ending in ``\\`` continues on the next; ``#``
  lines are comments), with this environment's ``bin/`` first on the PATH,
  so ``fastbp`` and ``python`` are the ones under test; a non-zero exit
  fails the test;
- any other block (```console, ```text, ```sh ...) is shown, not run: the
  commands that need mpiexec across machines, a cluster, a large file or a
  ``pip install``.

A bash line that installs (``pip install``) is not run either: the test
runs in the environment it would make. The README's two commands are such
lines, and tests/test_readme.py checks them against CI's.

A page that needs an optional package says so in a comment on its first
lines, ``<!-- doc-test: needs sklearn pandas -->``; without it the page is
skipped (pytest.importorskip, so CI reruns it with the extras installed).
The python blocks may not use an old module path (``fastbp.stream``...):
its DeprecationWarning is an error here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

#: A bash line holding one of these installs into an environment: not run.
INSTALLS = ("pip install",)

#: Arguments a command of a page gets in the test, where the page's command
#: takes minutes: the latency benchmark as a smoke run.
SHORTER = {"python benchmarks/onnx_latency.py": "--quick"}

#: Text the output of a command must hold (the command as the page writes it).
EXPECT = {"python benchmarks/onnx_latency.py": "| onnxruntime, one input per column |"}

#: The README is being cut to 200 lines (issue 18); its long form has blocks
#: that are fragments (a class to paste into a module, a file not shipped).
#: Once it is no longer than this, every block of it must run too.
README_LINES = 200

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<lang>[\w+-]*)[ \t]*$")
_NEEDS = re.compile(r"<!--\s*doc-test:\s*needs\s+([\w .-]+?)\s*-->")


def code_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, code, line number of the opening fence) of each fenced
    block, indented ones (in a list item) dedented; "" for no language."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body, j = [], i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(
                lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j]
            )
            j += 1
        if j == len(lines):
            raise AssertionError(f"line {i + 1}: a code block that is never closed")
        blocks.append((opening["lang"], "\n".join(body) + "\n", i + 1))
        i = j + 1
    return blocks


def commands(code: str) -> list[str]:
    """The command lines of a bash block: continuations joined, comments and
    blank lines left out."""
    joined = re.sub(r"[ \t]*\\\n[ \t]*", " ", code)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def installs(command: str) -> bool:
    """Whether a command line installs into an environment (not run)."""
    return any(word in command for word in INSTALLS)


def needs(text: str) -> list[str]:
    """The optional modules a page names in its doc-test comment."""
    found = _NEEDS.search(text[:2000])
    return found.group(1).split() if found else []


def _is_long_readme(page: Path) -> bool:
    return page.name == "README.md" and (
        len(page.read_text().splitlines()) > README_LINES
    )


def _params():
    params = []
    for page in PAGES:
        marks = []
        if _is_long_readme(page):
            marks.append(
                pytest.mark.xfail(
                    reason=f"README.md is longer than {README_LINES} lines: its "
                    "blocks run once it is cut (issue 18)",
                    strict=False,
                )
            )
        params.append(
            pytest.param(page, id=page.relative_to(ROOT).as_posix(), marks=marks)
        )
    return params


def test_the_block_reader_finds_indented_and_unlabelled_blocks():
    text = textwrap.dedent(
        """\
        Some text.

        ```python
        x = 1
        ```

        - a list item:

          ```bash
          fastbp train --data xor \\
              --epochs 3
          # a comment
          ```

        ```
        plain
        ```
        """
    )
    blocks = code_blocks(text)
    assert [(lang, line) for lang, _, line in blocks] == [
        ("python", 3),
        ("bash", 9),
        ("", 15),
    ]
    assert commands(blocks[1][1]) == ["fastbp train --data xor --epochs 3"]
    assert installs('python3 -m venv .venv && pip install -e ".[test]"')
    assert not installs("fastbp train --data xor")
    assert needs("<!-- doc-test: needs sklearn pandas -->\n# Title") == [
        "sklearn",
        "pandas",
    ]


def test_every_page_is_tested():
    names = {page.name for page in PAGES}
    for page in ("cli.md", "data.md", "python.md", "sklearn.md", "mpi.md"):
        assert page in names
    assert {"extending.md", "kernels.md", "onnx.md", "README.md"} <= names


@pytest.mark.parametrize("page", _params())
def test_every_code_block_of_the_page_runs(page, tmp_path, monkeypatch):
    text = page.read_text()
    for module in needs(text):
        pytest.importorskip(module)
    blocks = code_blocks(text)
    for lang, _, line in blocks:
        assert lang, f"{page.name}, line {line}: a code block without a language"
    fastbp = Path(sys.executable).parent / "fastbp"
    assert fastbp.exists(), f"no fastbp command beside {sys.executable}"
    for folder in ("examples", "benchmarks"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ)
    env["PATH"] = f"{fastbp.parent}{os.pathsep}{env['PATH']}"
    namespace: dict = {"__name__": "__docs__"}
    registry = _registry()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "error", r".* moved to fastbp\.", category=DeprecationWarning
            )
            for lang, code, line in blocks:
                where = f"{page.name}, block at line {line}"
                if lang == "python":
                    exec(compile(code, where, "exec"), namespace)
                elif lang == "bash":
                    for command in commands(code):
                        if installs(command):
                            continue
                        _run(command, env, where)
    finally:
        _restore(registry)


def _run(command: str, env: dict, where: str) -> None:
    run = command
    for prefix, extra in SHORTER.items():
        if command.startswith(prefix):
            run = f"{command} {extra}"
    done = subprocess.run(
        ["bash", "-c", run], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, (
        f"{where}: {shlex.quote(command)} exited {done.returncode}\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    for prefix, expected in EXPECT.items():
        if command.startswith(prefix):
            assert expected in done.stdout, f"{where}: {command}\n{done.stdout}"


def _registry() -> list[tuple[dict, dict]]:
    """The parts registry's tables and a copy of each: a page that registers
    an activation of its own must not leave it to the tests that follow."""
    from fastbp.nn.parts import ACTIVATIONS, LOSSES, OPTIMIZERS, builtin_parts

    builtin_parts()
    return [(table, dict(table)) for table in (ACTIVATIONS, LOSSES, OPTIMIZERS)]


def _restore(saved: list[tuple[dict, dict]]) -> None:
    for table, copy in saved:
        table.clear()
        table.update(copy)
