"""A dense layer's three products as explicit SIMD code, for the kernels
generated per architecture (special.py).

Each product is written here as LLVM IR through llvmlite, called from
Numba code through an ``@intrinsic`` whose sizes are literals, so every
function is generated for one layer shape:

==========================================  ===============================
``forward(x, xo, w, wo, bo, y, yo, m,       Y = act(X @ W + b), X (m, K),
K, N, ACT)``                                W (K, N) at w[wo:], b at w[bo:]
``weight_grad(x, xo, dz, dzo, g, wo, bo,    dW = X.T @ dZ into g[wo:],
m, K, N)``                                  db = column sums of dZ into
                                            g[bo:]
``transpose(w, wo, wt, K, N)``              WT (N, K) = W.T into wt[0:]
``input_grad(dz, dzo, wt, wto, dx, dxo,    dX = dZ @ W.T from WT (N, K),
h, ho, m, K, N, MASK)``                     times (H > 0) when MASK (ReLU's
                                            derivative, H the input's
                                            activation at h[ho:])
==========================================  ===============================

All matrices are row-major in flat arrays at the given offsets; m is the
batch's row count (run time), K, N, ACT and MASK literals (ACT 1: ReLU
fused, 0: none). ``forward`` with N = 1 is a dot product along each row
(vector accumulators summed at the end); the Numba loop it replaces
(the removed micro.mm_forward_1, which LLVM unrolled completely at K = 256 and then
could not vectorize) took 199 us for 256 rows of 256 against OpenBLAS's
4.7.

Why not loops in Numba: a register-blocked loop written in Numba keeps its
accumulators in the output array, because LLVM cannot prove that the output
does not alias the inputs, and so stores and reloads them on every term
(35-46 GFLOP/s measured by the previous session). Here each block of R rows
and up to four vectors of columns keeps R x 4 vector accumulators as SSA
values (allocas that LLVM promotes to registers): per term of the sum one
vector load of B per column vector, one broadcast of A per row and R x 4
fused multiply-adds, so the FMA units, not memory, bound the loop. The
pointers are marked ``noalias`` (distinct arrays, or disjoint parts of one).

dX = dZ @ W.T needs W's columns as contiguous vectors: ``transpose`` writes
W.T once per step (16 x 16 tiles transposed in registers by shuffles, about
a tenth of the product's time at 64 x 64), and ``input_grad`` then has the
form of ``forward``. The other products need no copy.

Vector width: 64 bytes with AVX-512 (16 float32 / 8 float64 lanes), 32 with
AVX, else 16; LLVM splits wider types for narrower targets, so the code is
correct for any target Numba compiles for (NUMBA_CPU_NAME), only slower.

Measured 2026-12-07 on an Intel Xeon (Emerald Rapids, AVX-512), 1 thread,
float32, 64 rows, medians of 51 interleaved 1 ms samples
(``taskset -c 0 python benchmarks/simd_products.py``), GFLOP/s, SIMD
against OpenBLAS (nn, tn, nt): 64x64: 165 / 172 / 155 (transpose included)
against 166 / 171 / 69; 32x64: 157 / 157 / 151 against 159 / 166 / 78;
2x8: 80 / 9 / 8 against 8 / 3 / 3 (call overhead); 128x128: 117 / 163 / 91
against 120 / 120 / 81. At 256x256 OpenBLAS wins (112 / 100 / 87 against
122 / 128 / 91): W no longer fits in L1 and these loops do not block for
it, hence special.SIMD_MAX_WEIGHTS. float64, 200 rows, 24x8: 58 / 55 / 54
against 17 / 56 / 9. Four rows per block (16 accumulators) beat six or
seven (24-28) at 64 wide, 167-174 against 150-163 GFLOP/s: with 64-row
batches four divides the rows and leaves no remainder.
"""

from __future__ import annotations

import functools

from llvmlite import binding as llvm
from llvmlite import ir
from numba.core import cgutils, config, types
from numba.extending import intrinsic

__all__ = ["forward", "weight_grad", "transpose", "input_grad", "vector_bytes"]

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
#: Vector accumulators per block: 4 rows x 4 vectors (see the module
#: docstring), half the 32 registers of AVX-512, leaving room for B's vectors.
_ACCUMULATORS = 16
_MAX_ROWS = 8
_MAX_GROUP = 4  # column vectors per block
_DB_WAYS = 4  # partial sums of the bias gradient


@functools.cache
def vector_bytes() -> int:
    """Bytes per vector register of the CPU Numba compiles for."""
    if config.CPU_FEATURES is not None:
        features = {f[1:] for f in config.CPU_FEATURES.split(",") if f[:1] == "+"}
    elif config.CPU_NAME is not None:
        return 16  # e.g. NUMBA_CPU_NAME=generic for a portable cache
    else:
        features = {k for k, on in llvm.get_host_cpu_features().items() if on}
    if "avx512f" in features:
        return 64
    if "avx" in features:
        return 32
    return 16


def _c(value: int) -> ir.Constant:
    return ir.Constant(_I64, value)


class _Gen:
    """IR helpers bound to one builder and element type."""

    def __init__(self, builder: ir.IRBuilder, real: ir.Type):
        self.b = builder
        self.real = real
        self.size = 4 if isinstance(real, ir.FloatType) else 8
        self.lanes = vector_bytes() // self.size

    def vtype(self, width: int) -> ir.VectorType:
        return ir.VectorType(self.real, width)

    def splat(self, value, width: int):
        b, vt = self.b, self.vtype(width)
        v = b.insert_element(ir.Constant(vt, ir.Undefined), value, ir.Constant(_I32, 0))
        mask = ir.Constant(ir.VectorType(_I32, width), [0] * width)
        return b.shuffle_vector(v, ir.Constant(vt, ir.Undefined), mask)

    def zeros(self, width: int):
        return ir.Constant(self.vtype(width), [0.0] * width)

    def load(self, ptr, index, width: int):
        p = self.b.bitcast(self.b.gep(ptr, [index]), self.vtype(width).as_pointer())
        return self.b.load(p, align=self.size)

    def store(self, value, ptr, index) -> None:
        p = self.b.bitcast(self.b.gep(ptr, [index]), value.type.as_pointer())
        self.b.store(value, p, align=self.size)

    def fma(self, a, x, y):
        vt = a.type
        kind = "f32" if self.size == 4 else "f64"
        fn = cgutils.get_or_insert_function(
            self.b.module,
            ir.FunctionType(vt, [vt, vt, vt]),
            f"llvm.fma.v{vt.count}{kind}",
        )
        return self.b.call(fn, [a, x, y])

    def positive(self, v):
        """The lanes of v that are > 0 (ordered: NaN is not)."""
        return self.b.fcmp_ordered(">", v, self.zeros(v.type.count))

    def relu(self, v):
        """max(v, 0) with NaN kept, as Numba's max(x, 0.0) in
        activations.activate_flat (so a diverged layer stays visible)."""
        keep = self.b.fcmp_unordered(">", v, self.zeros(v.type.count))
        return self.b.select(keep, v, self.zeros(v.type.count))


def _chunks(width: int, lanes: int) -> list[tuple[int, int]]:
    """(offset, lanes) of the vectors covering ``width`` values: full ones,
    then powers of two for the rest (LLVM legalizes any power of two)."""
    out, j = [], 0
    while j < width:
        w = min(lanes, width - j)
        p = 1 << (w.bit_length() - 1)
        out.append((j, p))
        j += p
    return out


def _groups(width: int, lanes: int) -> list[list[tuple[int, int]]]:
    chunks = _chunks(width, lanes)
    return [chunks[i : i + _MAX_GROUP] for i in range(0, len(chunks), _MAX_GROUP)]


def _rows_per_block(vectors: int) -> int:
    return max(1, min(_MAX_ROWS, _ACCUMULATORS // vectors))


def _block(g: _Gen, rows: int, group, depth, a_addr, b_addr, init, finish) -> None:
    """acc[r][c] = init(r, c) + sum over p < depth of A(r, p) * B(p, c), then
    finish(r, offset, acc) for r < rows and each chunk c of the group."""
    b = g.b
    accs = [[cgutils.alloca_once(b, g.vtype(w)) for _, w in group] for _ in range(rows)]
    for r in range(rows):
        for (off, w), acc in zip(group, accs[r], strict=True):
            b.store(init(r, off, w), acc)
    with cgutils.for_range(b, depth) as loop:
        p = loop.index
        bv = [b_addr(p, off, w) for off, w in group]
        for r in range(rows):
            a = b.load(a_addr(r, p))
            for (_, w), vec, acc in zip(group, bv, accs[r], strict=True):
                b.store(g.fma(g.splat(a, w), vec, b.load(acc)), acc)
    for r in range(rows):
        for (off, _), acc in zip(group, accs[r], strict=True):
            finish(r, off, b.load(acc))


def _row_blocks(g: _Gen, count, size: int, body) -> None:
    """body(first, rows) over rows [0, count) in blocks of ``size``, then the
    remainder in one block of each power of two below size."""
    b = g.b
    full = b.udiv(count, _c(size))
    with cgutils.for_range(b, full) as loop:
        body(b.mul(loop.index, _c(size)), size)
    start = b.mul(full, _c(size))
    step = 1 << max(0, (size - 1).bit_length() - 1)
    while step >= 1:
        if step < size:
            take = b.icmp_unsigned(">=", b.sub(count, start), _c(step))
            with b.if_then(take):
                body(start, step)
            start = b.select(take, b.add(start, _c(step)), start)
        step //= 2


def _define(module: ir.Module, name: str, real: ir.Type, emit) -> ir.Function:
    """The function ``name`` of module (ptr x 5, i64 m) -> void, its body
    written by emit(gen, args) the first time."""
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    ptr = real.as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr] * 5 + [_I64]), name)
    fn.linkage = "linkonce_odr"  # identical wherever it is generated
    for arg in fn.args[:5]:
        arg.add_attribute("noalias")
    gen = _Gen(ir.IRBuilder(fn.append_basic_block()), real)
    emit(gen, fn.args)
    gen.b.ret_void()
    return fn


def _define_forward(module, real, K: int, N: int, act: int) -> ir.Function:
    def emit(g, args):
        x, w, bias, y, _, m = args
        b = g.b
        for group in _groups(N, g.lanes):

            def body(row0, rows, group=group):
                def a_addr(r, p):
                    return b.gep(x, [b.add(b.mul(b.add(row0, _c(r)), _c(K)), p)])

                def b_addr(p, off, w_):
                    return g.load(w, b.add(b.mul(p, _c(N)), _c(off)), w_)

                def init(r, off, w_):
                    return g.load(bias, _c(off), w_)

                def finish(r, off, acc):
                    if act == 1:
                        acc = g.relu(acc)
                    g.store(acc, y, b.add(b.mul(b.add(row0, _c(r)), _c(N)), _c(off)))

                _block(g, rows, group, _c(K), a_addr, b_addr, init, finish)

            _row_blocks(g, m, _rows_per_block(len(group)), body)

    name = f"fastbp_simd_forward_{real}_{vector_bytes()}_{K}_{N}_{act}"
    return _define(module, name, real, emit)


def _horizontal_sum(g: _Gen, v):
    """The sum of v's lanes, by halving: log2(lanes) shuffles and adds."""
    b = g.b
    width = v.type.count
    while width > 1:
        half = width // 2
        low = b.shuffle_vector(
            v, v, ir.Constant(ir.VectorType(_I32, half), list(range(half)))
        )
        high = b.shuffle_vector(
            v, v, ir.Constant(ir.VectorType(_I32, half), list(range(half, width)))
        )
        v, width = b.fadd(low, high), half
    return b.extract_element(v, ir.Constant(_I32, 0))


def _define_forward_dot(module, real, K: int, act: int) -> ir.Function:
    """forward for one output (N = 1): y[i] = act(b + X[i, :] . W[:, 0]), a
    dot product along each contiguous row, R rows at a time, one vector
    accumulator per row, its lanes summed at the end."""

    def emit(g, args):
        x, w, bias, y, _, m = args
        b, lanes = g.b, min(g.lanes, 1 << (K.bit_length() - 1))
        full = K // lanes

        def body(row0, rows):
            accs = [cgutils.alloca_once(b, g.vtype(lanes)) for _ in range(rows)]
            for acc in accs:
                b.store(g.zeros(lanes), acc)
            with cgutils.for_range(b, _c(full)) as loop:
                off = b.mul(loop.index, _c(lanes))
                wv = g.load(w, off, lanes)
                for r, acc in enumerate(accs):
                    row = b.mul(b.add(row0, _c(r)), _c(K))
                    xv = g.load(x, b.add(row, off), lanes)
                    b.store(g.fma(xv, wv, b.load(acc)), acc)
            for r, acc in enumerate(accs):
                total = b.fadd(b.load(bias), _horizontal_sum(g, b.load(acc)))
                row = b.mul(b.add(row0, _c(r)), _c(K))
                for q in range(full * lanes, K):  # the last K % lanes terms
                    xq = b.load(b.gep(x, [b.add(row, _c(q))]))
                    total = b.fadd(total, b.fmul(xq, b.load(b.gep(w, [_c(q)]))))
                if act == 1:
                    keep = b.fcmp_unordered(">", total, ir.Constant(g.real, 0.0))
                    total = b.select(keep, total, ir.Constant(g.real, 0.0))
                b.store(total, b.gep(y, [b.add(row0, _c(r))]))

        _row_blocks(g, m, _MAX_ROWS, body)

    name = f"fastbp_simd_forward_dot_{real}_{vector_bytes()}_{K}_{act}"
    return _define(module, name, real, emit)


def _define_weight_grad(module, real, K: int, N: int) -> ir.Function:
    def emit(g, args):
        x, dz, dw, db, _, m = args
        b = g.b
        if N == 1:
            # dW[:, 0] = sum_i dZ[i] X[i, :]: one row of K, summed over i.
            for group in _groups(K, g.lanes):

                def a_addr(r, p):
                    return b.gep(dz, [p])

                def b_addr(p, off, w_):
                    return g.load(x, b.add(b.mul(p, _c(K)), _c(off)), w_)

                def init(r, off, w_):
                    return g.zeros(w_)

                def finish(r, off, acc):
                    g.store(acc, dw, _c(off))

                _block(g, 1, group, m, a_addr, b_addr, init, finish)
        else:
            for group in _groups(N, g.lanes):

                def body(q0, rows, group=group):
                    def a_addr(r, p):
                        return b.gep(x, [b.add(b.mul(p, _c(K)), b.add(q0, _c(r)))])

                    def b_addr(p, off, w_):
                        return g.load(dz, b.add(b.mul(p, _c(N)), _c(off)), w_)

                    def init(r, off, w_):
                        return g.zeros(w_)

                    def finish(r, off, acc):
                        idx = b.add(b.mul(b.add(q0, _c(r)), _c(N)), _c(off))
                        g.store(acc, dw, idx)

                    _block(g, rows, group, m, a_addr, b_addr, init, finish)

                _row_blocks(g, _c(K), _rows_per_block(len(group)), body)
        # db = column sums of dZ (N = 1: the sum of its m values), rows
        # taken _DB_WAYS at a time into as many partial sums: one running
        # sum per column vector would wait on the add before it at every row
        # (0.3 us of a 1.2 us 200 x 24 -> 8 float64 weight gradient).
        for group in _groups(N, g.lanes):
            sums = [
                [cgutils.alloca_once(b, g.vtype(w_)) for _, w_ in group]
                for _ in range(_DB_WAYS)
            ]
            for way in sums:
                for (_, w_), s in zip(group, way, strict=True):
                    b.store(g.zeros(w_), s)

            def add_rows(first, count, group=group, sums=sums):
                for k in range(count):
                    row = b.mul(b.add(first, _c(k)), _c(N))
                    for (off, w_), s in zip(group, sums[k], strict=True):
                        v = g.load(dz, b.add(row, _c(off)), w_)
                        b.store(b.fadd(b.load(s), v), s)

            _row_blocks(g, m, _DB_WAYS, add_rows)
            for i, (off, _) in enumerate(group):
                total = b.load(sums[0][i])
                for way in sums[1:]:
                    total = b.fadd(total, b.load(way[i]))
                g.store(total, db, _c(off))

    name = f"fastbp_simd_weight_grad_{real}_{vector_bytes()}_{K}_{N}"
    return _define(module, name, real, emit)


def _define_input_grad(module, real, K: int, N: int, mask: int) -> ir.Function:
    def emit(g, args):
        dz, wt, dx, h, _, m = args
        b = g.b
        for group in _groups(K, g.lanes):

            def body(row0, rows, group=group):
                def a_addr(r, p):
                    return b.gep(dz, [b.add(b.mul(b.add(row0, _c(r)), _c(N)), p)])

                def b_addr(p, off, w_):
                    return g.load(wt, b.add(b.mul(p, _c(K)), _c(off)), w_)

                def init(r, off, w_):
                    return g.zeros(w_)

                def finish(r, off, acc):
                    idx = b.add(b.mul(b.add(row0, _c(r)), _c(K)), _c(off))
                    if mask:
                        keep = g.positive(g.load(h, idx, acc.type.count))
                        acc = b.select(keep, acc, g.zeros(acc.type.count))
                    g.store(acc, dx, idx)

                _block(g, rows, group, _c(N), a_addr, b_addr, init, finish)

            _row_blocks(g, m, _rows_per_block(len(group)), body)

    name = f"fastbp_simd_input_grad_{real}_{vector_bytes()}_{K}_{N}_{mask}"
    return _define(module, name, real, emit)


def _transpose_tile(g: _Gen, rows: list) -> list:
    """The L x L tile held in L vectors of L lanes (L a power of two),
    transposed: one butterfly stage per bit of the index, each swapping
    the off-diagonal d x d blocks of every 2d x 2d block (L log2 L
    two-source shuffles)."""
    b, lanes = g.b, len(rows)
    d = 1
    while d < lanes:
        low = [c if not c & d else lanes + c - d for c in range(lanes)]
        high = [c + d if not c & d else lanes + c for c in range(lanes)]
        new = list(rows)
        for i in range(lanes):
            if i & d:
                continue
            j = i + d
            new[i] = b.shuffle_vector(
                rows[i], rows[j], ir.Constant(ir.VectorType(_I32, lanes), low)
            )
            new[j] = b.shuffle_vector(
                rows[i], rows[j], ir.Constant(ir.VectorType(_I32, lanes), high)
            )
        rows = new
        d *= 2
    return rows


def _define_transpose(module, real, K: int, N: int) -> ir.Function:
    def emit(g, args):
        w, wt, _, _, _, _ = args
        b, lanes = g.b, g.lanes
        tiles_k, tiles_n = K // lanes, N // lanes
        with cgutils.for_range(b, _c(tiles_k)) as qt:
            q0 = b.mul(qt.index, _c(lanes))
            with cgutils.for_range(b, _c(tiles_n)) as jt:
                j0 = b.mul(jt.index, _c(lanes))
                tile = [
                    g.load(w, b.add(b.mul(b.add(q0, _c(r)), _c(N)), j0), lanes)
                    for r in range(lanes)
                ]
                for c, vec in enumerate(_transpose_tile(g, tile)):
                    g.store(vec, wt, b.add(b.mul(b.add(j0, _c(c)), _c(K)), q0))

        def copy(q, j):
            value = b.load(b.gep(w, [b.add(b.mul(q, _c(N)), j)]))
            b.store(value, b.gep(wt, [b.add(b.mul(j, _c(K)), q)]))

        # The edges (K or N not a multiple of the lanes), element by element:
        # the columns right of the tiles for every row, then the rows below.
        full_k, full_n = tiles_k * lanes, tiles_n * lanes
        if full_n < N:
            with cgutils.for_range(b, _c(K)) as q:
                with cgutils.for_range(b, _c(N - full_n)) as j:
                    copy(q.index, b.add(j.index, _c(full_n)))
        if full_k < K and full_n > 0:
            with cgutils.for_range(b, _c(K - full_k)) as q:
                with cgutils.for_range(b, _c(full_n)) as j:
                    copy(b.add(q.index, _c(full_k)), j.index)

    name = f"fastbp_simd_transpose_{real}_{vector_bytes()}_{K}_{N}"
    return _define(module, name, real, emit)


def _literals(*values) -> bool:
    return all(isinstance(v, types.IntegerLiteral) for v in values)


def _real(array_type) -> ir.Type:
    return ir.FloatType() if array_type.dtype == types.float32 else ir.DoubleType()


def _floats(*arrays) -> bool:
    dtypes = {getattr(a, "dtype", None) for a in arrays}
    return len(dtypes) == 1 and dtypes <= {types.float32, types.float64}


def _pointer(context, builder, array_type, array, offset):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [offset])


_i = types.int64


@intrinsic
def forward(typingctx, x, xo, w, wo, bo, y, yo, m, K, N, ACT):
    """Y[i, :] = act(b + X[i, :] @ W) for i < m (see the module docstring)."""
    if not (_literals(K, N, ACT) and _floats(x, w, y)):
        return None
    k, n, act = K.literal_value, N.literal_value, ACT.literal_value
    sig = types.void(x, _i, w, _i, _i, y, _i, _i, K, N, ACT)

    def codegen(context, builder, signature, args):
        x_, xo_, w_, wo_, bo_, y_, yo_, m_ = args[:8]
        real = _real(signature.args[0])
        if n == 1:
            fn = _define_forward_dot(builder.module, real, k, act)
        else:
            fn = _define_forward(builder.module, real, k, n, act)
        ta = signature.args
        xp = _pointer(context, builder, ta[0], x_, xo_)
        wp = _pointer(context, builder, ta[2], w_, wo_)
        bp = _pointer(context, builder, ta[2], w_, bo_)
        yp = _pointer(context, builder, ta[5], y_, yo_)
        builder.call(fn, [xp, wp, bp, yp, yp, m_])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def weight_grad(typingctx, x, xo, dz, dzo, g, wo, bo, m, K, N):
    """dW = X.T @ dZ into g[wo:] (K, N), db = column sums of dZ into g[bo:]."""
    if not (_literals(K, N) and _floats(x, dz, g)):
        return None
    k, n = K.literal_value, N.literal_value
    sig = types.void(x, _i, dz, _i, g, _i, _i, _i, K, N)

    def codegen(context, builder, signature, args):
        x_, xo_, dz_, dzo_, g_, wo_, bo_, m_ = args[:8]
        real = _real(signature.args[0])
        fn = _define_weight_grad(builder.module, real, k, n)
        ta = signature.args
        xp = _pointer(context, builder, ta[0], x_, xo_)
        dzp = _pointer(context, builder, ta[2], dz_, dzo_)
        dwp = _pointer(context, builder, ta[4], g_, wo_)
        dbp = _pointer(context, builder, ta[4], g_, bo_)
        builder.call(fn, [xp, dzp, dwp, dbp, dbp, m_])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def transpose(typingctx, w, wo, wt, K, N):
    """wt[:N * K] = W.T for W (K, N) at w[wo:]."""
    if not (_literals(K, N) and _floats(w, wt)):
        return None
    k, n = K.literal_value, N.literal_value
    sig = types.void(w, _i, wt, K, N)

    def codegen(context, builder, signature, args):
        w_, wo_, wt_ = args[:3]
        real = _real(signature.args[0])
        fn = _define_transpose(builder.module, real, k, n)
        wp = _pointer(context, builder, signature.args[0], w_, wo_)
        tp = _pointer(context, builder, signature.args[2], wt_, _c(0))
        builder.call(fn, [wp, tp, tp, tp, tp, _c(0)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def input_grad(typingctx, dz, dzo, wt, wto, dx, dxo, h, ho, m, K, N, MASK):
    """dX = dZ @ W.T into dx[dxo:] (m, K), from WT (N, K) at wt[wto:] (for
    N = 1, W itself); times (H > 0) elementwise when MASK, H (m, K) at
    h[ho:]."""
    if not (_literals(K, N, MASK) and _floats(dz, wt, dx, h)):
        return None
    k, n, mask = K.literal_value, N.literal_value, MASK.literal_value
    sig = types.void(dz, _i, wt, _i, dx, _i, h, _i, _i, K, N, MASK)

    def codegen(context, builder, signature, args):
        dz_, dzo_, wt_, wto_, dx_, dxo_, h_, ho_, m_ = args[:9]
        real = _real(signature.args[0])
        fn = _define_input_grad(builder.module, real, k, n, mask)
        ta = signature.args
        dzp = _pointer(context, builder, ta[0], dz_, dzo_)
        wtp = _pointer(context, builder, ta[2], wt_, wto_)
        dxp = _pointer(context, builder, ta[4], dx_, dxo_)
        hp = _pointer(context, builder, ta[6], h_, ho_)
        builder.call(fn, [dzp, wtp, dxp, hp, hp, m_])
        return context.get_dummy_value()

    return sig, codegen
