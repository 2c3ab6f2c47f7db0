import warnings

import pytest

from keras_vae.tasks import training
from keras_vae.utils import cpu

PROCESSOR = "processor\t: {n}\nmodel name\t: AMD EPYC\ncpu family\t: 23\nflags\t\t: {flags}\n"


def write_cpuinfo(path, first_flags, second_flags="avx2 avx512_bf16"):
    path.write_text(
        PROCESSOR.format(n=0, flags=first_flags) + "\n" + PROCESSOR.format(n=1, flags=second_flags)
    )
    return path


def test_first_processor_reads_only_the_first_block(tmp_path):
    info = cpu.first_processor(write_cpuinfo(tmp_path / "cpuinfo", "fpu avx2"))
    assert info == {
        "processor": "0",
        "model name": "AMD EPYC",
        "cpu family": "23",
        "flags": "fpu avx2",
    }
    assert cpu.first_processor(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    "flags, expected",
    [("fpu avx2 fma", False), ("avx2 avx512f avx512_bf16", True), ("avx2 amx_bf16 amx_tile", True)],
)
def test_computes_bfloat16_reads_the_flags(tmp_path, flags, expected):
    assert cpu.computes_bfloat16(write_cpuinfo(tmp_path / "cpuinfo", flags)) is expected


def test_computes_bfloat16_is_unknown_without_flags(tmp_path):
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu.computes_bfloat16(arm) is None
    assert cpu.computes_bfloat16(tmp_path / "missing") is None


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "bfloat16"])
def test_bfloat16_on_a_cpu_that_emulates_it_warns(tmp_path, policy):
    cpuinfo = write_cpuinfo(tmp_path / "cpuinfo", "fpu avx2 fma")
    with pytest.warns(UserWarning, match=rf"^dtype_policy='{policy}' on a CPU without bfloat16"):
        cpu.warn_if_bfloat16_is_emulated(policy, cpuinfo)


@pytest.mark.parametrize(
    "policy, flags",
    [
        ("mixed_bfloat16", "avx2 avx512_bf16"),
        ("float32", "fpu avx2"),
        ("mixed_float16", "fpu avx2"),
        ("mixed_bfloat16", None),  # unknown CPU
    ],
)
def test_no_warning_otherwise(tmp_path, policy, flags):
    cpuinfo = tmp_path / "missing" if flags is None else write_cpuinfo(tmp_path / "c", flags)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu.warn_if_bfloat16_is_emulated(policy, cpuinfo)


def test_train_warns_before_it_loads_data(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu, "CPUINFO", str(write_cpuinfo(tmp_path / "cpuinfo", "fpu avx2")))

    def load_images(*args, **kwargs):
        raise RuntimeError("stop: data is loaded after the warning")

    monkeypatch.setattr(training.data, "load_images", load_images)
    with pytest.warns(UserWarning, match="without bfloat16"), pytest.raises(RuntimeError):
        training.train_model(dataset="mnist", dtype_policy="mixed_bfloat16", epochs=1)


def test_physical_memory_is_the_machines_unless_a_container_limits_it(tmp_path):
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    unlimited, limited = tmp_path / "memory.max", tmp_path / "limit_in_bytes"
    unlimited.write_text("max\n")
    limited.write_text(f"{2**30}\n")
    machine = cpu.physical_memory(cgroup_limits=[unlimited, tmp_path / "missing"])
    assert abs(machine - total) < 2**20  # MemTotal is in kB, the pages are 4 kB
    assert cpu.physical_memory(cgroup_limits=[unlimited, limited]) == 2**30
