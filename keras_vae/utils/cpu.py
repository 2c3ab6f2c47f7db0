"""What the CPU computes natively, read from Linux's `/proc/cpuinfo`."""

import warnings

CPUINFO = "/proc/cpuinfo"
# CPU flags of native bfloat16 arithmetic: AVX-512 BF16 (AMD Zen 4 and newer,
# Intel Cooper Lake and newer) and Intel's AMX tiles.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


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
