"""Training with subnormal numbers flushed to zero (x86-64 FTZ and DAZ).

Under Adam with an L2 penalty, the weights of a unit whose data gradient is
0 (a dead ReLU unit) shrink towards 0 with nothing to stop them: on raw
diamonds (26-64-1 ReLU, float32, L2 1e-4) half the first layer's weights
were below 1e-33 after 20 epochs, so their products with the inputs fell
below float32's smallest normal number (1.2e-38), and every step ran the
CPU's slow subnormal arithmetic (about 100 cycles an operation): 33.5 µs a
step instead of 3.1. float64 has the same cliff at 2.2e-308, which training
does not reach. :func:`flush_subnormals` sets the SSE control register's
flush-to-zero and denormals-are-zero bits (MXCSR 0x8040) for the calling
thread while training runs, as TensorFlow does by default and
``torch.set_flush_denormal(True)`` does on request, and restores the
register afterwards. Results change only where a subnormal would have
appeared (values below 1.2e-38 in float32 become 0).

The register is read and written by two LLVM functions compiled once per
process with llvmlite (Numba's own LLVM); on other CPUs, or when that fails,
nothing is changed.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
from collections.abc import Callable, Iterator

__all__ = ["flush_subnormals", "mxcsr"]

#: MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits.
FTZ_DAZ = 0x8040

_IR = r"""
declare void @llvm.x86.sse.stmxcsr(i8*)
declare void @llvm.x86.sse.ldmxcsr(i8*)

define i32 @fastbp_mxcsr_swap(i32 %new) {
entry:
  %slot = alloca i32, align 4
  %p = bitcast i32* %slot to i8*
  call void @llvm.x86.sse.stmxcsr(i8* %p)
  %old = load i32, i32* %slot
  store i32 %new, i32* %slot
  call void @llvm.x86.sse.ldmxcsr(i8* %p)
  ret i32 %old
}
"""

_swap: Callable[[int], int] | None = None
_tried = False
_engine = None  # keeps the compiled code alive


def _swap_function() -> Callable[[int], int] | None:
    """swap(new) -> old: writes MXCSR, returns what it held; None where the
    CPU is not x86-64 or the function could not be compiled."""
    global _swap, _tried, _engine
    if _tried:
        return _swap
    _tried = True
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        module = llvm.parse_assembly(_IR)
        module.verify()
        machine = llvm.Target.from_default_triple().create_target_machine()
        _engine = llvm.create_mcjit_compiler(module, machine)
        _engine.finalize_object()
        address = _engine.get_function_address("fastbp_mxcsr_swap")
        _swap = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint32)(address)
    except Exception:  # an LLVM without the intrinsics: leave the CPU as it is
        _swap = None
    return _swap


def mxcsr() -> int | None:
    """The calling thread's MXCSR (None where it cannot be read)."""
    swap = _swap_function()
    if swap is None:
        return None
    value = swap(0x1F80)  # the power-on default, put back at once
    swap(value)
    return value


@contextlib.contextmanager
def flush_subnormals() -> Iterator[None]:
    """Run the block with FTZ and DAZ set for this thread; restore after."""
    swap = _swap_function()
    if swap is None:
        yield
        return
    before = swap(0x1F80)
    swap(before | FTZ_DAZ)
    try:
        yield
    finally:
        swap(before)
