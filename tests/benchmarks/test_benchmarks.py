"""Smoke tests of the benchmark scripts: each `main()` on a tiny slice of MNIST.

Every test runs one script's command line through training, evaluation and
`benchmarks.common.record`, with `RESULTS.md` and all output folders under
`tmp_path`, then reads back the recorded block: its title, its command and
its tables, whose figures must be finite and in a sane range. These runs are
marked slow (`make test-slow`); the default run checks only the records'
`machine` line.
"""

import math
import os
import re
import sys
import time

import keras
import numpy as np
import pytest

from benchmarks import (
    cli_commands,
    common,
    cvae_quality,
    eval_speed,
    export_latency,
    iwae_finetune,
    kl_warmup,
    likelihood,
    runtime_matrix,
    scaling,
    train_quality,
    train_throughput,
)
from keras_vae.models.presets import build_vae

# The largest NLL or -ELBO an MNIST model can sanely give: 784 pixels at
# probability 1e-6 each would be over 10,000 nats; an untrained one gives about 550.
MAX_NATS = 1000.0


@pytest.fixture
def results(tmp_path, monkeypatch, tfds_data_dir):
    """`record` writes to a tmp `RESULTS.md`; relative default outputs go under tmp_path."""
    path = tmp_path / "RESULTS.md"
    monkeypatch.setattr(common, "RESULTS", path)
    monkeypatch.chdir(tmp_path)
    return path


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("fpu avx avx2 fma", "(family 25 model 17; avx2)"),
        (
            "avx2 avx512f avx512_bf16 amx_bf16",
            "(family 25 model 17; avx2 avx512f avx512_bf16 amx_bf16)",
        ),
        ("fpu sse4_2", "(family 25 model 17; no AVX2)"),
    ],
)
def test_machine_names_cpu_family_and_bfloat16_support(tmp_path, flags, expected):
    processor = f"model name\t: AMD EPYC\ncpu family\t: 25\nmodel\t\t: 17\nflags\t\t: {flags}\n"
    # Only the first processor is read: the second one's flags must not leak in.
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(processor + "\n" + processor.replace(flags, "avx512_bf16"))
    line = common.machine(cpuinfo)
    assert line.startswith(f"AMD EPYC {expected}, "), line
    assert line.endswith(f" cores, Python {sys.version.split()[0]}"), line


def run(monkeypatch, module, *args):
    """Runs `python -m benchmarks.<module> ARGS` in this process."""
    script = common.REPO_ROOT / "benchmarks" / f"{module.__name__.split('.')[-1]}.py"
    monkeypatch.setattr(sys, "argv", [str(script), *map(str, args)])
    module.main()


def recorded(path, module, title):
    """The one block in `path`: checks its title and command, returns its text."""
    text = path.read_text()
    assert text.count("\n## ") + text.startswith("## ") == 1, text
    assert text.startswith(f"## {title}"), text
    name = module.__name__.split(".")[-1]
    assert f"- command: `python -m benchmarks.{name} " in text
    assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE), text
    return text


def tables(text):
    """The markdown tables of `text`: a list of tables, each a list of {header: cell}."""
    found, lines = [], text.splitlines()
    for index, line in enumerate(lines):
        if re.fullmatch(r"\|( -*-+:? \|)+", line):
            header = [cell.strip() for cell in lines[index - 1].strip("|").split("|")]
            rows = []
            for row in lines[index + 1 :]:
                if not row.startswith("|"):
                    break
                cells = [cell.strip() for cell in row.strip("|").split("|")]
                assert len(cells) == len(header), row
                rows.append(dict(zip(header, cells, strict=True)))
            assert rows, header
            found.append(rows)
    return found


def number(cell):
    """The first number in a cell ("1,234", "-97.57", "**0.981**", "19 of 50"), finite."""
    match = re.search(r"[-+]?\d[\d,]*(\.\d+)?", cell)
    assert match, cell
    value = float(match.group().replace(",", ""))
    assert math.isfinite(value), cell
    return value


@pytest.fixture
def trained_vae(tmp_path):
    """A `.keras` MLP VAE (latent 4) fitted for one step on random binary images."""
    keras.utils.set_random_seed(0)
    model = build_vae("mlp", (28, 28, 1), latent_dim=4, seed=0)
    model.compile(optimizer="adam")
    images = (np.random.default_rng(0).random((32, 28, 28, 1)) < 0.2).astype("float32")
    model.fit(images, batch_size=32, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    return path


@pytest.mark.slow
def test_eval_speed(results, monkeypatch, trained_vae):
    run(
        monkeypatch, eval_speed,
        "--model", trained_vae, "--num-images", 20, "--importance-samples", 1, 4,
        "--batch-size", 10,
    )  # fmt: skip
    text = recorded(results, eval_speed, "Importance-weighted log-likelihood")
    (rows,) = tables(text)
    assert [number(row["K"]) for row in rows] == [1, 4]
    for row in rows:
        nll, elbo = number(row["NLL (nats)"]), number(row["ELBO (nats)"])
        assert 0 < nll < MAX_NATS and -MAX_NATS < elbo < 0
        assert row["active units"].endswith("of 4")
    # With K = 1 the estimate is the ELBO itself (up to the sample drawn).
    assert number(rows[0]["NLL (nats)"]) == pytest.approx(-number(rows[0]["ELBO (nats)"]), rel=0.1)


@pytest.mark.slow
def test_cli_commands(results, monkeypatch):
    run(monkeypatch, cli_commands, "--repeats", 1)
    text = recorded(results, cli_commands, "CLI commands: the executable's frozen imports")
    (rows,) = tables(text)
    assert [row["run as"] for row in rows] == ["keras-vae (frozen)", "main() (not frozen)"] * 3
    for row in rows:
        low, high = (number(part) for part in row["min–max s"].split("–"))
        assert 0 < low == number(row["median s"]) == high  # one run each


@pytest.mark.slow
def test_scaling(results, monkeypatch):
    run(
        monkeypatch, scaling,
        "--sizes", 128, "--latent-dims", 2, "--batch-size", 64, "--rounds", 1,
    )  # fmt: skip
    text = recorded(results, scaling, "Training cost against dataset size and latent size (mlp)")
    (rows,) = tables(text)
    settings = [(number(row["training images"]), number(row["latent dim"])) for row in rows]
    assert settings == [(128, 50), (128, 2)]
    for row in rows:
        assert number(row["seconds per epoch"]) >= 0 and number(row["images/s"]) > 0


@pytest.mark.slow
def test_train_throughput_without_torch(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    run(
        monkeypatch, train_throughput,
        "--architecture", "mlp", "--latent-dim", 4, "--batch-size", 64, "--rounds", 1,
        "--train-size", 256, "--without", "jit_compile=",
    )  # fmt: skip
    text = recorded(results, train_throughput, "Training throughput")
    (rows,) = tables(text)
    rates = {row["contender"]: row for row in rows}
    assert set(rates) == {
        "keras_vae.VAE",
        "keras_vae.VAE, mixed_bfloat16",
        train_throughput.REFERENCE,
        train_throughput.FLOOR,
    }
    for row in rows:
        assert number(row["images/s"]) > 0
        assert number(row[f"ratio to {train_throughput.REFERENCE}"]) > 0
    assert number(rates[train_throughput.REFERENCE][f"ratio to {train_throughput.REFERENCE}"]) == 1
    assert {row[f"ratio to {train_throughput.TORCH}"] for row in rows} == {"n/a"}
    assert text.rstrip().endswith(", no torch.")
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.slow
def test_train_throughput_against_pythae(results, monkeypatch):
    pytest.importorskip("pythae")  # installed by hand for the benchmark, never a dependency
    run(
        monkeypatch, train_throughput,
        "--against", "pythae", "--architecture", "iwae", "--latent-dim", 4, "--epochs", 3,
        "--train-size", 300,
    )  # fmt: skip
    text = recorded(results, train_throughput, "Training throughput: per-epoch")
    (rows,) = tables(text)
    assert [row["contender"] for row in rows] == [
        train_throughput.KERAS_VAE,
        train_throughput.KERAS_VAE_ARRAYS,
        train_throughput.PYTHAE,
    ]
    medians = {}
    for row in rows:
        low, high = (number(cell) for cell in row["min – max"].split("–"))
        medians[row["contender"]] = number(row["median images/s"])
        assert 0 < low <= medians[row["contender"]] <= high
        assert re.fullmatch(r"[1-3] of 3", row["epochs within 15 % of its fastest"])
        assert number(row["CPU s per epoch (median, min – max)"]) > 0
        # 300 images at the median rate take the median wall time.
        assert number(row["wall s per epoch (median)"]) == pytest.approx(
            300 / medians[row["contender"]], abs=0.01
        )
        other, steal = row["other processes' CPU s, steal s (most in an epoch)"].split(", ")
        assert float(other) >= 0 and float(steal) >= 0
    ratio, arrays = re.search(
        r"keras_vae / pythae: \*\*([\d.]+)\*\* \(numpy array: ([\d.]+)\)", text
    ).groups()
    pythae = medians[train_throughput.PYTHAE]
    # Printed with 2 decimals: off by at most 0.005.
    assert float(ratio) == pytest.approx(medians[train_throughput.KERAS_VAE] / pythae, abs=0.0051)
    expected = medians[train_throughput.KERAS_VAE_ARRAYS] / pythae
    assert float(arrays) == pytest.approx(expected, abs=0.0051)
    assert text.count("Two-core probe") == 2


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux's /proc/stat")
def test_machine_cpu_seconds_count_this_process_work():
    machine, steal = train_throughput.machine_cpu_seconds()
    own = time.process_time()
    while time.process_time() - own < 0.3:
        pass
    own = time.process_time() - own
    later, later_steal = train_throughput.machine_cpu_seconds()
    # The machine ran at least this process's work (ticks are 10 ms), and steal only grows.
    assert later - machine >= own - 0.05
    assert later_steal >= steal >= 0


@pytest.mark.parametrize("text", ["Keras", "PyTorch float"])
def test_train_throughput_keeps_its_references(monkeypatch, capsys, text):
    with pytest.raises(SystemExit) as exit_info:
        run(monkeypatch, train_throughput, "--without", "bfloat16", text)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith(
        "Expected --without to spare the references ('hand-written Keras', "
        f"'PyTorch float32'). Received: without={text!r}"
    )


def test_torch_contenders():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = (np.random.default_rng(0).random((16, 28, 28, 1)) < 0.2).astype("float32")
    for architecture in ("mlp", "conv"):
        contenders, version = train_throughput.torch_contenders(architecture, 4, x, 16)
        assert set(contenders) == {train_throughput.TORCH, "PyTorch bfloat16 autocast"}
        assert version.startswith(f"torch {torch.__version__}")
        for run_one_epoch in contenders.values():
            assert 0 < run_one_epoch() < MAX_NATS  # the last batch's loss


@pytest.mark.slow
def test_train_quality(results, monkeypatch, tmp_path):
    output = tmp_path / "quality"
    run(
        monkeypatch, train_quality,
        "--latent-dim", 4, "--epochs", 1, "--train-split", "train[:256]",
        "--test-split", "test[:100]", "--output", output, "--copy-samples", tmp_path / "s.png",
    )  # fmt: skip
    text = recorded(results, train_quality, "Test ELBO: mlp VAE, latent 4, 1 epochs")
    assert "Splits: MNIST train[:256] and test[:100]." in text
    (rows,) = tables(text)
    assert [row["split"] for row in rows] == ["train", "test"]
    for row in rows:
        elbo, reconstruction, kl = (number(row[k]) for k in ("ELBO", "reconstruction", "KL"))
        assert -MAX_NATS < elbo < 0 and kl >= 0
        assert elbo == pytest.approx(reconstruction - kl, abs=0.02)
    assert (output / "model.keras").is_file() and (tmp_path / "s.png").is_file()


@pytest.mark.slow
def test_kl_warmup(results, monkeypatch):
    run(
        monkeypatch, kl_warmup,
        "--latent-dim", 4, "--epochs", 1, "--warmup-epochs", 1, "--importance-samples", 4,
        "--test-images", 20, "--train-split", "train[:256]", "--test-split", "test[:100]",
    )  # fmt: skip
    text = recorded(results, kl_warmup, "KL warm-up: mlp VAE, latent 4, 1 epochs")
    ((row,),) = tables(text)
    assert row["warm-up epochs"] == "1"
    assert -MAX_NATS < number(row["test ELBO"]) < 0 < number(row["NLL"]) < MAX_NATS
    assert number(row["test KL"]) >= 0 and row["active units"].endswith("of 4")


@pytest.mark.slow
def test_likelihood(results, monkeypatch, tmp_path):
    output = tmp_path / "likelihood"
    args = [
        "--runs", "iwae5", "--stages", 1, "--batch-size", 64, "--train-images", 128,
        "--importance-samples", 4, "--test-images", 20, "--output", output,
    ]  # fmt: skip
    run(monkeypatch, likelihood, *args)
    text = recorded(results, likelihood, "Test log-likelihood against the IWAE paper")
    assert "MNIST train[:128]" in text
    ((row,),) = tables(text)
    assert row["run"] == "iwae5" and row["epochs"] == "1 (1 stages)"
    assert number(row["train min"]) >= 0
    assert 0 < number(row["NLL"]) < MAX_NATS and 0 < number(row["-ELBO"]) < MAX_NATS
    assert number(row["gap"]) == pytest.approx(number(row["NLL"]) - number(row["paper NLL"]))
    assert (output / "iwae5-1stages.keras").is_file()

    # --reuse scores the saved model again without training.
    results.unlink()
    run(monkeypatch, likelihood, *args, "--reuse")
    ((reused,),) = tables(recorded(results, likelihood, "Test log-likelihood"))
    assert reused["train min"] == "reused" and reused["NLL"] == row["NLL"]


def test_likelihood_stops_a_run_whose_loss_is_not_finite(results, monkeypatch, tmp_path):
    # A decoder bias of NaN: the first epoch's loss is NaN, the run stops
    # there and neither a checkpoint, the model nor a result is written.
    build = likelihood.build

    def diverged(*args, **kwargs):
        model = build(*args, **kwargs)
        model.build((None, 28, 28, 1))
        bias = model.decoder.weights[-1]
        bias.assign(np.full(bias.shape, np.nan, "float32"))
        return model

    monkeypatch.setattr(likelihood, "build", diverged)
    output = tmp_path / "likelihood"
    args = [
        "--runs", "vae", "--stages", 1, "--batch-size", 64, "--train-images", 64,
        "--importance-samples", 2, "--test-images", 4, "--checkpoint-every", 1,
        "--output", output,
    ]  # fmt: skip
    with pytest.raises(SystemExit, match=r"^vae: the loss became nan in epoch 1; nothing saved"):
        run(monkeypatch, likelihood, *args)
    assert list(output.iterdir()) == [] and not results.exists()


@pytest.fixture
def iwae5_model(tmp_path):
    """`benchmarks.likelihood`'s IWAE K=5 model, untrained, saved as iwae5-0stages.keras."""
    keras.utils.set_random_seed(0)
    model = likelihood.build("iwae5", 0)
    model.build((None, 28, 28, 1))
    path = tmp_path / "iwae5-0stages.keras"
    model.save(path)
    return path


@pytest.mark.slow
def test_iwae_finetune(results, monkeypatch, tmp_path, iwae5_model):
    output = tmp_path / "finetune"
    run(
        monkeypatch, iwae_finetune,
        "--init", iwae5_model, "--run", "iwae50", "--epochs", 1, "--batch-size", 64,
        "--train-images", 128, "--importance-samples", 4, "--test-images", 20,
        "--checkpoint-every", 1, "--output", output,
    )  # fmt: skip
    text = recorded(results, iwae_finetune, "IWAE fine-tuned with a larger K")
    ((row,),) = tables(text)
    assert row["run"] == "iwae50" and row["extra epochs"] == "1"
    assert 0 < number(row["NLL"]) < MAX_NATS and 0 < number(row["-ELBO"]) < MAX_NATS
    assert row["active units"].endswith("of 50")
    assert (output / "iwae50-from-iwae5-0stages-1.keras").is_file()
    assert (output / "iwae50-from-iwae5-0stages-checkpoint-1.keras").is_file()


@pytest.mark.slow
def test_export_latency(results, monkeypatch, tmp_path):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    run(
        monkeypatch, export_latency,
        "--latent-dim", 4, "--train-images", 256, "--runs", 2, "--warmup", 1, "--eval-size", 20,
    )  # fmt: skip
    text = recorded(results, export_latency, "Export: latency, size and quantization cost")
    assert "trained 1 epoch(s) here on MNIST train[:256]" in text
    (rows,) = tables(text)
    tflite = [
        f"TFLite {mode or 'float32'}, {runner}"
        for mode in export_latency.QUANTIZE
        for runner in export_latency.RUNNERS
    ]
    assert [row["export"] for row in rows] == [
        "Keras decode, eager",
        "Keras decode, tf.function",
        "SavedModel `serving_default`",
        *tflite,
    ]
    reference = number(rows[0]["test ELBO"])
    assert -MAX_NATS < reference < 0
    for row in rows:
        assert number(row["decode 1 (µs)"]) > 0 and number(row["decode 64 (µs)"]) > 0
    for row in rows[3:]:
        assert number(row["size"]) > 0
        assert number(row["sample 1 (µs)"]) > 0 and number(row["sample 64 (µs)"]) > 0
    # Each file's ELBO is scored once, through the Sampler in the Interpreter.
    scored = [row for row in rows[3:] if row["export"].endswith(", Sampler, Interpreter")]
    assert [row["export"] for row in rows[3:] if row["test ELBO"]] == [
        row["export"] for row in scored
    ]
    assert len(scored) == len(export_latency.QUANTIZE)
    for row in scored:
        assert number(row["test ELBO"]) == pytest.approx(reference, abs=5)
    assert abs(number(scored[0]["ELBO cost (nats)"])) < 0.01  # float32 decodes as Keras does
    assert list(tmp_path.glob("export_latency_*/saved_model"))


@pytest.mark.parametrize("accuracy, flagged", [(0.9899, True), (0.99, False), (0.9922, False)])
def test_cvae_quality_flags_a_classifier_below_the_targets_99_percent(accuracy, flagged):
    sentence = cvae_quality.classifier_sentence("a convnet", accuracy)
    assert sentence.startswith(f"Classifier (a convnet): test accuracy {accuracy:.4f}.")
    assert ("Below the 99 %" in sentence) == flagged


@pytest.mark.slow
def test_cvae_quality(results, monkeypatch, tmp_path):
    classifier = tmp_path / "classifier.keras"
    run(
        monkeypatch, cvae_quality,
        "--epochs", 1, "--classifier-epochs", 8, "--classifier", classifier,
        "--observed-classifier-epochs", 1, "--completion-images", 50, "--completions", 2,
        "--temperatures", 1, "--gsnn-weights", 0.1, "--train-images", 512,
        "--test-images", 200, "--nll-samples", 3,
    )  # fmt: skip
    text = recorded(results, cvae_quality, "Conditional VAE on MNIST: generation and completion")
    assert text.count("Data: MNIST train[:512] and test[:200].") == 1
    accuracy = float(re.search(r"test accuracy (\S+)\.", text).group(1))
    assert 0.3 < accuracy <= 1  # well above chance even after 8 epochs (32 steps) on 512 images
    label, completion = tables(text)
    assert [row["prior"] for row in label] == ["standard, latent 4", "learned, latent 8"]
    for row in label:
        shares = [number(row[str(k)]) for k in range(10)]
        assert all(0 <= share <= 1 for share in shares)
        assert number(row["all"]) == pytest.approx(sum(shares) / 10, abs=0.01)
        assert number(row["diversity"]) > 0
    assert [row["completer"] for row in completion] == [
        "CVAE, gsnn_weight 0.1, temperature 1",
        "deterministic regressor",
    ]
    for row in completion:
        for column in list(row)[1:3]:
            assert 0 <= number(row[column]) <= 1
        assert 0 <= number(row["pixel entropy"]) <= 1
        # 392 binary pixels: below 392 ln 2 (a coin per pixel) once trained at all.
        assert 0 < number(row["NLL (nats)"]) < 392 * np.log(2)
    assert "with K=3" in text
    assert "the first 50 test images, 2 completions each" in text
    assert "learned prior with hidden layers (256, 512)," in text
    assert re.search(r"top half alone \(missing pixels zeroed\) labels 0\.\d{3} ", text)
    assert "small convnet with batch normalization, 8 epochs): test accuracy" in text
    assert "Below the 99 %" in text  # 512 training images
    assert classifier.is_file()
    # A second run reuses the saved classifier and says so instead of naming epochs.
    results.unlink()
    run(
        monkeypatch, cvae_quality,
        "--epochs", 1, "--classifier-epochs", 3, "--classifier", classifier, "--parts", "label",
        "--train-images", 512, "--test-images", 200,
    )  # fmt: skip
    text = recorded(results, cvae_quality, "Conditional VAE on MNIST: generation and completion")
    assert f"(loaded from {classifier}): test accuracy {accuracy:.4f}." in text


@pytest.mark.slow
def test_reliability_inputs(capsys):
    from benchmarks import reliability_inputs

    assert reliability_inputs.main(["--cases", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line[:28].strip(): line[28:].split() for line in lines[1:] if line[:1].isalpha()}
    assert set(rows) == {*reliability_inputs.ENTRANCES, "total"}
    tried, clear, correct, crash, silent = map(int, rows["total"])
    assert tried == 4 * len(reliability_inputs.ENTRANCES) == clear + correct + crash + silent
    assert crash == silent == 0


def parity_cell(cell):
    """{"decode": x, "sample": y} from a runtime matrix cell "decode 1.2e-07; sample 3e-07"."""
    found = dict(re.findall(r"(decode|sample) (\d\.\de[-+]\d\d)", cell))
    assert found and set(found) <= {"decode", "sample"}, cell
    return {key: float(value) for key, value in found.items()}


def test_runtime_matrix_cells_and_table():
    reference = {"decode": np.zeros((4, 28, 28, 1)), "sample": np.zeros((2, 4, 28, 28, 1))}
    decoded = np.zeros((4, 784))  # a runtime may give flat images: compared in Keras's shape
    decoded[1, 100] = 0.25
    samples = np.zeros((2, 4, 28, 28, 1))
    samples[1, 2, 5, 5, 0] = -0.5
    ran = runtime_matrix.cell(reference, decoded, samples, times=[0.001, 0.002, 0.003])
    assert (ran["decode"], ran["sample"], ran["batch"]) == (0.25, 0.5, 4)
    message = "Expected a TFLite runtime ... Received: model='/tmp/abc/mlp/dynamic.tflite' (op)"
    refused = runtime_matrix.cell(reference, refused=message)
    decode_only = runtime_matrix.cell(reference, decoded, times=[0.004] * 3)
    cells = {
        "MLP": {("interpreter", "float32"): ran, ("tflite_runtime", "dynamic"): refused},
        "conv": {("interpreter", "float32"): decode_only},
    }
    lines = runtime_matrix.table(
        cells, ["interpreter", "tflite_runtime", "onnx"], list(runtime_matrix.TFLITE_FILES)
    )
    (rows,) = tables("\n".join(lines))
    assert [(row["runtime"], row["quantization"]) for row in rows] == [
        ("LiteRT 2.3 Interpreter", "float32"),
        ("tflite-runtime 2.14", "dynamic"),
    ]  # rows without any cell are left out
    assert parity_cell(rows[0]["MLP parity"]) == {"decode": 0.25, "sample": 0.5}
    assert rows[0]["MLP decode (ms)"] == "2.00 (1.20–2.80)"
    assert parity_cell(rows[0]["conv parity"]) == {"decode": 0.25}  # no sampler: no sample
    assert number(rows[0]["conv decode (ms)"]) == 4.0
    assert rows[1]["MLP parity"] == (
        "refused: Expected a TFLite runtime ... Received: model='dynamic.tflite' (op)"
    )
    assert rows[1]["MLP decode (ms)"] == "—" and rows[1]["conv parity"] == ""


@pytest.mark.slow
def test_runtime_matrix(results, monkeypatch, tmp_path):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    run(
        monkeypatch, runtime_matrix,
        "--models", "mlp", "--latent-dim", 4, "--train-split", "train[:256]",
        "--runtimes", "saved_model,interpreter,compiled_model,micro,onnx",
        "--quantizations", "float32,int8-full", "--repeats", 2, "--seeds", 2, "--batch", 8,
    )  # fmt: skip
    text = recorded(results, runtime_matrix, "Runtime matrix: parity with Keras")
    assert "latent 4, trained 1 epoch(s) here on MNIST train[:256]" in text
    assert "shared by other jobs" in text
    (rows,) = tables(text)
    assert list(rows[0]) == ["runtime", "quantization", "MLP parity", "MLP decode (ms)"]
    assert [(row["runtime"], row["quantization"]) for row in rows] == [
        ("TensorFlow SavedModel", "float32"),
        ("LiteRT 2.3 Interpreter", "float32"),
        ("LiteRT 2.3 Interpreter", "int8-full"),
        ("LiteRT 2.3 CompiledModel", "float32"),
        ("LiteRT 2.3 CompiledModel", "int8-full"),
        ("TFLite Micro", "float32"),
        ("TFLite Micro", "int8-full"),
        ("ONNX Runtime", "float32"),
    ]
    for row in rows:  # every one of these runtimes loads these files: no refusal
        parity = parity_cell(row["MLP parity"])
        # Every file here samples (int8-full with z drawn on the host).
        assert set(parity) == {"decode", "sample"}, row
        bound = 1e-5 if row["quantization"] == "float32" else 0.1
        assert max(parity.values()) < bound, row
        assert number(row["MLP decode (ms)"]) > 0
