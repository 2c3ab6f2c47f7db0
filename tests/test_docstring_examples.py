"""The `>>>` examples in keras_vae's docstrings run and print what they show.

Examples marked `# doctest: +SKIP` (those that need a trained model or a
file) are read, not run.
"""

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Source folder -> package, as pyproject.toml's package-dir maps them.
PACKAGES = {REPO / "keras_vae": "keras_vae", REPO / "export": "keras_vae.export"}


def _runs_examples(path):
    return any(
        line.lstrip().startswith(">>> ") and "doctest: +SKIP" not in line
        for line in path.read_text().splitlines()
    )


# The modules with examples that run, found from their text: importing every
# module to look would load TensorFlow in the process that only hands out the tests.
MODULES = sorted(
    ".".join([package, *path.relative_to(folder).with_suffix("").parts]).removesuffix(".__init__")
    for folder, package in PACKAGES.items()
    for path in folder.rglob("*.py")
    if _runs_examples(path)
)


def test_the_modules_with_examples_are_found():
    expected = {"keras_vae.ops.random", "keras_vae.export.saved_model"}
    assert expected <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_print_what_they_show(name, capsys):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    examples = 0
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test)
        examples += sum(not example.options.get(doctest.SKIP) for example in test.examples)
    failed, _ = runner.summarize(verbose=False)
    report = capsys.readouterr().out
    assert examples > 0, f"{name}: no example found to run"
    assert failed == 0, report
