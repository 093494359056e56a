"""Ways to write a 64x64x64 float32 product Y = X W + b in Numba, against
fastbp.kernels.simd.forward: what the brief asked to try for the small
layers, kept so the comparison can be rerun.

    taskset -c 0 python benchmarks/gemm_variants.py

- "numba loop": 4 rows at a time, i-k-j, the output rows as accumulators;
- the same compiled with Numba's ``Flags.noalias`` (set by a pass added to
  the default pipeline through ``pipeline_class``), which marks the
  function's pointer arguments noalias;
- "scalar accumulators": 4 rows x 16 columns of scalar locals per block,
  generated source, left to LLVM's SLP vectorizer;
- simd.forward (LLVM vector IR through an intrinsic).

Each in a compiled loop of 300 calls, data in L1, medians of 31 interleaved
rounds.
"""

import statistics
import time

import numpy as np
from numba import njit
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.untyped_passes import IRProcessing

from fastbp.kernels import simd


@register_pass(mutates_CFG=False, analysis_only=True)
class _NoAlias(FunctionPass):
    _name = "fastbp_noalias"

    def __init__(self):
        FunctionPass.__init__(self)

    def run_pass(self, state):
        state.flags.noalias = True
        return False


class NoAliasCompiler(CompilerBase):
    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.add_pass_after(_NoAlias, IRProcessing)
        pm.finalize()
        return [pm]


FM = {"nsz", "arcp", "contract", "afn", "reassoc"}


def blocked(x, w, b, y, m):
    """Y = X W + b, 4 rows at a time, i-k-j with the output rows as accumulators."""
    for i0 in range(0, m, 4):
        for r in range(4):
            yr = y[(i0 + r) * 64 : (i0 + r + 1) * 64]
            for j in range(64):
                yr[j] = b[j]
        for q in range(64):
            wq = w[q * 64 : (q + 1) * 64]
            for r in range(4):
                a = x[(i0 + r) * 64 + q]
                yr = y[(i0 + r) * 64 : (i0 + r + 1) * 64]
                for j in range(64):
                    yr[j] += a * wq[j]


plain = njit(fastmath=FM, error_model="numpy")(blocked)
noalias = njit(fastmath=FM, error_model="numpy", pipeline_class=NoAliasCompiler)(
    blocked
)

# scalar-local accumulators: 4 rows x 16 columns per block, generated
lines = [
    "def scalar(x, w, b, y, m):",
    "    for i0 in range(0, m, 4):",
    "        for j0 in range(0, 64, 16):",
]
for r in range(4):
    for j in range(16):
        lines.append(f"            a{r}_{j} = b[j0 + {j}]")
lines.append("            for q in range(64):")
lines.append("                wq = w[q * 64 + j0:q * 64 + j0 + 16]")
for r in range(4):
    lines.append(f"                x{r} = x[(i0 + {r}) * 64 + q]")
    for j in range(16):
        lines.append(f"                a{r}_{j} += x{r} * wq[{j}]")
for r in range(4):
    lines.append(f"            yr = y[(i0 + {r}) * 64 + j0:(i0 + {r}) * 64 + j0 + 16]")
    for j in range(16):
        lines.append(f"            yr[{j}] = a{r}_{j}")
ns = {}
exec("\n".join(lines), ns)
scalar = njit(fastmath=FM, error_model="numpy")(ns["scalar"])


@njit(fastmath=FM, error_model="numpy")
def simd_fwd(x, w, b, y, m):
    simd.forward(x, 0, w, 0, 4096, y, 0, m, 64, 64, 0)


def looped(f):
    @njit(fastmath=FM, error_model="numpy")
    def run(x, w, b, y, m, reps):
        for _ in range(reps):
            f(x, w, b, y, m)

    return run


rng = np.random.default_rng(0)
x = rng.standard_normal(64 * 64).astype(np.float32)
w = rng.standard_normal(4096 + 64).astype(np.float32)
b = w[4096:].copy()
y = np.zeros(64 * 64, np.float32)
want = (x.reshape(64, 64) @ w[:4096].reshape(64, 64) + b).ravel()
variants = {
    "numba loop": looped(plain),
    "numba loop, noalias flag": looped(noalias),
    "scalar accumulators": looped(scalar),
    "simd.forward": looped(simd_fwd),
}
for name, f in variants.items():
    f(x, w, b, y, 64, 1)
    assert np.allclose(y, want, rtol=1e-4, atol=1e-3), name
res = {k: [] for k in variants}
for _ in range(31):
    for k, f in variants.items():
        t = time.perf_counter()
        f(x, w, b, y, 64, 300)
        res[k].append((time.perf_counter() - t) / 300)
ir = noalias.inspect_llvm(noalias.signatures[0])
marked = ir.count("noalias")
print(f"(noalias attributes in the flagged loop's IR: {marked})")
for k, v in res.items():
    d = statistics.median(v)
    print(f"{k:28s} {d * 1e6:6.2f} us  {2 * 64**3 / d / 1e9:6.1f} GFLOP/s")
