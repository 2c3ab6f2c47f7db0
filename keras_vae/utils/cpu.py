"""What the machine offers: the CPU's native arithmetic (Linux's `/proc/cpuinfo`) and memory."""

import os
import warnings

CPUINFO = "/proc/cpuinfo"
# CPU flags of native bfloat16 arithmetic: AVX-512 BF16 (AMD Zen 4 and newer,
# Intel Cooper Lake and newer) and Intel's AMX tiles.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


# cgroup v2 and v1 memory limits: a container may have less than the host.
CGROUP_MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def physical_memory(cgroup_limits=CGROUP_MEMORY_LIMITS):
    """Bytes of memory this process can have: the machine's, or its container's limit if lower.

    Args:
        cgroup_limits: paths of files holding a memory limit in bytes (or
            `max`). Defaults to cgroup v2's and v1's.

    Returns:
        int, or `None` where the operating system does not say.
    """
    try:
        limits = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    except (AttributeError, ValueError, OSError):
        limits = []
    for path in cgroup_limits:
        try:
            with open(path) as f:
                limits.append(int(f.read()))
        except (OSError, ValueError):  # absent, or "max" (no limit)
            pass
    limits = [limit for limit in limits if limit > 0]
    return min(limits) if limits else None


def first_processor(cpuinfo=None) -> dict:
    """The fields of the first processor listed in `cpuinfo`.

    Args:
        cpuinfo: str or path. The file to read. Defaults to `/proc/cpuinfo`.

    Returns:
        A dict of field name to value (e.g. `"model name"`, `"cpu family"`,
        `"flags"`), empty where the file cannot be read (not Linux).
    """
    try:
        with open(CPUINFO if cpuinfo is None else cpuinfo) as f:
            block = f.read().split("\n\n")[0]
    except OSError:
        return {}
    fields = (line.split(":", 1) for line in block.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in fields}


def computes_bfloat16(cpuinfo=None):
    """Whether the CPU has bfloat16 arithmetic: True, False, or None if unknown.

    None where `cpuinfo` cannot be read or lists no x86 `flags` (e.g. Arm).
    """
    flags = first_processor(cpuinfo).get("flags")
    if flags is None:
        return None
    return not set(BFLOAT16_FLAGS).isdisjoint(flags.split())


def warn_if_bfloat16_is_emulated(dtype_policy, cpuinfo=None):
    """Warns when `dtype_policy` computes in bfloat16 on a CPU that emulates it.

    Only when TensorFlow sees no GPU or TPU, which would run the networks
    instead. On an AVX2-only CPU, `mixed_bfloat16` made the conv preset's
    training 10x slower than float32 (`benchmarks/RESULTS.md`).
    """
    name = getattr(dtype_policy, "name", dtype_policy)
    if name not in ("bfloat16", "mixed_bfloat16") or computes_bfloat16(cpuinfo) is not False:
        return
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"):
        return
    warnings.warn(
        f"dtype_policy={name!r} on a CPU without bfloat16 arithmetic (none of the flags "
        f"{', '.join(BFLOAT16_FLAGS)}) and no GPU: TensorFlow emulates bfloat16 here, so "
        "training is likely slower than with 'float32' (10x for the conv preset on an "
        "AVX2-only CPU).",
        stacklevel=2,
    )
