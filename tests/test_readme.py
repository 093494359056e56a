"""The README's commands and example are the ones that work."""

import re
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    (command,) = re.findall(r"^TEST_COMMAND='(.*)'$", ci, flags=re.M)
    commands = [line for block in _bash_blocks(README) for line in block.splitlines()]
    assert command in commands
    assert "python -m pytest" in command and 'pip install -e ".[test]"' in command


def test_readme_main_command_installs_and_trains_xor():
    first = _bash_blocks(README)[0].strip()
    assert first.startswith("python3 -m venv .venv")
    assert first.endswith("fastbp train --data xor")


def test_readme_python_example_runs_and_solves_xor():
    example, *snippets = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    for snippet in snippets:  # fragments (e.g. how to register a part) parse
        compile(textwrap.dedent(snippet), "README.md", "exec")
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    predictions = namespace["model"].predict(namespace["X"]).ravel()
    assert np.array_equal(predictions > 0.5, [False, True, True, False])
    assert namespace["result"].fused
