"""What the command-line tests share: the example files, running ``fastbp``
in-process and as the installed command, and the shape of a one-line error."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from fastbp.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
IRIS = EXAMPLES / "iris.csv"
REGRESSION = EXAMPLES / "regression.csv"
V1_IRIS = Path(__file__).resolve().parent / "fixtures" / "model_v1_iris.npz"
SPECIES = ("setosa", "versicolor", "virginica")

#: Keys every ``train --json`` record carries.
JSON_KEYS = {
    "samples_per_s",
    "steps_per_s",
    "us_per_step",
    "train_seconds",
    "compile_seconds",
    "epochs",
    "train_loss",
    "val_loss",
}

#: Bytes of a model file that a failing ``train --save`` must leave alone.
OLD_MODEL = b"PK\x03\x04 an older model file, not to be replaced"


def invoke(*args):
    """Run ``fastbp ARGS`` in-process; returns click's Result."""
    return CliRunner().invoke(main, [str(a) for a in args])


def train_json(*args):
    """Run ``fastbp train ARGS --json --quiet``; returns the JSON record."""
    result = invoke("train", *args, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def fastbp_command():
    exe = shutil.which("fastbp")
    if exe:
        return [exe]
    return [sys.executable, "-c", "from fastbp.cli import main; main()"]


def run_fastbp(*args, cwd):
    """Run the installed ``fastbp`` in a subprocess."""
    return subprocess.run(
        [*fastbp_command(), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def assert_input_error(output, exit_code, *names):
    """The run failed the way bad input must: exit 2, no traceback, the last
    line is ``Error: ...`` and names each of names. Returns that line."""
    assert exit_code == 2, output
    assert "Traceback" not in output
    last = output.strip().splitlines()[-1]
    assert last.startswith("Error:"), output
    for name in names:
        assert str(name) in last, (name, last)
    return last
