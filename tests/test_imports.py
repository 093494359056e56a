"""The package's imports run one way, and no module reads another's private names.

Floors, from the top: the command line; the estimators; the benchmark suite;
data (reading, preparing, streaming, sharding); model files and outputs;
training; the networks (layers, losses, optimizers, the registry); the
boundary helpers; the kernels. The old module paths, kept as shims, sit above
everything, so that no module of the package uses them. A module may import from its
own floor's package-private helpers only where listed, and otherwise only from
floors below it. Read from the source with ``ast``, so nothing is imported.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fastbp"

#: Module (dotted, relative to fastbp) -> floor; lower floors sit below.
FLOORS = {
    # the old module paths (shims over the packages): nothing inside imports them
    **dict.fromkeys(
        ("train", "gradcheck", "layers", "losses", "optim", "parts", "schedules",
         "checkpoint", "tables", "problem", "stream", "shard", "outputs"),
        90,
    ),
    "__main__": 75,
    "__init__": 68,
    "cli": 70,
    "sklearn": 65,
    "bench": 60,
    "data": 55,
    "plot": 50,
    "io": 45,
    "training": 40,
    "nn": 30,
    "_validate": 20,
    "_threads": 20,
    "_files": 20,
    "progress": 20,
    "kernels": 10,
    "_config": 5,
    "_version": 5,
    "_compat": 3,
}  # fmt: skip


def floor_of(module: str) -> int:
    """The floor of a dotted module name ("kernels.dense" -> kernels')."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in FLOORS:
            return FLOORS[key]
    raise KeyError(f"no floor declared for fastbp.{module}: add it to FLOORS")


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        yield name or "__init__", path


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str | None:
    """The fastbp module an ImportFrom names (dotted, relative to fastbp)."""
    if node.level == 0:
        if node.module and node.module.split(".")[0] == "fastbp":
            return node.module.partition(".")[2] or "__init__"
        return None
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    target = ".".join([*base, *(node.module.split(".") if node.module else [])])
    return target or "__init__"


def imports_of(module: str, path: Path):
    """(line, target module, imported names) of every fastbp import."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, node, is_package)
            if target is not None:
                yield node.lineno, target, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fastbp":
                    yield node.lineno, alias.name.partition(".")[2] or "__init__", []


MODULES = [m for m in modules() if m[0] not in ("__init__",)]


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_point_down(module, path):
    here = floor_of(module)
    subpackage = module.split(".")[0]
    inside = "." in module or path.name == "__init__.py"
    for line, target, names in imports_of(module, path):
        if inside and target.split(".")[0] == subpackage:
            continue  # siblings inside one subpackage (kernels, bench)
        for name in names or [""]:
            if target == "__init__":
                full = name or target  # "from .. import kernels", "import fastbp"
            else:
                full = f"{target}.{name}" if name else target
            try:
                there = floor_of(full)
            except KeyError:
                there = floor_of(target)
            assert there < here, (
                f"fastbp/{path.relative_to(PACKAGE)}:{line} imports fastbp.{full} "
                f"(floor {there}) from floor {here}: imports must point down"
            )


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_no_module_reads_another_modules_private_names(module, path):
    for line, target, names in imports_of(module, path):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, (
            f"fastbp/{path.relative_to(PACKAGE)}:{line} imports {private} from "
            f"fastbp.{target}"
        )
    # module._name through an imported module object
    tree = ast.parse(path.read_text())
    aliases = {
        (a.asname or a.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level > 0
        for a in node.names
        if (PACKAGE / Path(*module.split(".")[:-1]) / f"{a.name}.py").exists()
        or (PACKAGE / f"{a.name}.py").exists()
        or (PACKAGE / a.name).is_dir()
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            pytest.fail(
                f"fastbp/{path.relative_to(PACKAGE)}:{node.lineno} reads "
                f"{node.value.id}.{node.attr}"
            )


def test_import_fastbp_needs_no_optional_extra():
    import subprocess
    import sys

    code = (
        "import sys, fastbp, fastbp.kernels, fastbp.io, fastbp.io.onnx;"
        "bad = [m for m in ('sklearn', 'matplotlib', 'mpi4py', 'torch', 'jax', "
        "'pyarrow', 'onnx', 'onnxruntime', 'skl2onnx') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_onnx_is_imported_by_the_export_only():
    """The estimators and the command line load no ONNX package until an
    export or a converter registration asks for one."""
    import subprocess
    import sys

    pytest.importorskip("sklearn")
    code = (
        "import sys, fastbp.sklearn, fastbp.cli;"
        "bad = [m for m in ('onnx', 'onnxruntime', 'skl2onnx') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


#: Commands and calls that must not import Numba (nor SciPy, which the BLAS
#: kernels bring): what they need is NumPy and, for tables, pyarrow.
_NO_NUMBA = {
    "model and NumPy inference": (
        "import fastbp, numpy as np;"
        "m = fastbp.mlp([4, 8, 3], 'gelu', rng=0);"
        "m.serve(np.ones((5, 4), np.float32)); fastbp.MSELoss(); "
        "fastbp.Adam(m.parameters())"
    ),
    "the command line's help and option checks": (
        "from fastbp.cli.main import main\n"
        "for args in (['train', '--help'], ['predict', '--help'],"
        " ['train', '--hidden', 'x']):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass"
    ),
    "fastbp predict of a saved model on a few rows": (
        "import fastbp, numpy as np, tempfile, os, sys\n"
        "from fastbp.cli.main import main\n"
        "from fastbp.io.model import save_model\n"
        "d = tempfile.mkdtemp(); m = fastbp.mlp([2, 4, 1], 'relu', rng=0)\n"
        "save_model(os.path.join(d, 'm.npz'), m)\n"
        "open(os.path.join(d, 'x.csv'), 'w').write('x1,x2\\n1,2\\n3,4\\n')\n"
        "try:\n"
        "    main(['predict', '--model', os.path.join(d, 'm.npz'), '--data',"
        " os.path.join(d, 'x.csv'), '--out', os.path.join(d, 'p.csv')])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "assert open(os.path.join(d, 'p.csv')).read().count('\\n') == 3"
    ),
}


@pytest.mark.parametrize("what", sorted(_NO_NUMBA))
def test_what_needs_no_kernel_imports_no_numba(what):
    import subprocess
    import sys

    code = (
        _NO_NUMBA[what] + "\nimport sys\n"
        "bad = [m for m in ('numba', 'scipy') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


_PREDICT_ROWS = (
    "import fastbp, os, sys, tempfile\n"
    "from fastbp.cli.main import main, run\n"
    "from fastbp.io.model import save_model\n"
    "d = tempfile.mkdtemp(); m = fastbp.mlp([2, 4, 1], 'relu', rng=0)\n"
    "save_model(os.path.join(d, 'm.npz'), m)\n"
    "open(os.path.join(d, 'x.csv'), 'w').write('x1,x2\\n1,2\\n3,4\\n')\n"
    "args = ['predict', '--model', os.path.join(d, 'm.npz'), '--data',"
    " os.path.join(d, 'x.csv'), '--out', os.path.join(d, 'p.csv')]\n"
    "try:\n"
    "    {call}(args)\n"
    "except SystemExit as e:\n"
    "    assert not e.code, e.code\n"
    "assert open(os.path.join(d, 'p.csv')).read().count('\\n') == 3\n"
    "print('pandas' in sys.modules)\n"
)


@pytest.mark.parametrize("call, imported", [("run", "False"), ("main", "True")])
def test_the_console_script_keeps_pyarrow_from_importing_pandas(call, imported):
    """pyarrow imports pandas, when installed, at its first conversion; the
    console script (run) makes pandas unimportable for the table commands,
    the command group (main, as programs and tests call it) does not."""
    import subprocess
    import sys

    pytest.importorskip("pandas")
    code = _PREDICT_ROWS.replace("{call}", call)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split()[-1] == imported
