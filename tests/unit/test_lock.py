"""One lock (``constraints.txt``, resolved by ``make lock``) behind both the Lambda layers and the test environment:
a layer that pins a version the lock does not, or a test environment installed without the lock, fails here."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pins():
    """``layers/pins.py``, the script that takes the layers' pins from the lock (not a package: loaded by path)."""
    spec = importlib.util.spec_from_file_location("layer_pins", ROOT / "layers" / "pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_layer_pin_is_the_locks_version(pins):
    problems = pins.differences()
    assert not problems, "\n".join(problems) + "\n(python layers/pins.py takes the lock's versions)"


def test_the_lock_pins_one_version_of_each_package(pins):
    forked = {name: [v for v, _ in entries] for name, entries in pins.lock_versions().items() if len(entries) > 1}
    assert not forked, f"{forked}: the tests would run another version than some layer (make lock avoids forks)"


def test_the_test_environment_is_installed_from_the_lock(pins):
    lock = pins.lock_versions()
    wrong = []
    for name in lock:
        wanted = pins.locked_version(name, lock)
        if wanted is None:  # the lock's line is for another platform or Python (e.g. colorama on Windows)
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if canonicalize_name(installed) != canonicalize_name(wanted):
            wrong.append(f"{name}: {installed}, the lock pins {wanted}")
    assert not wrong, "\n".join(wrong) + "\n(make install installs with -c constraints.txt)"


def test_a_layer_pin_that_differs_from_the_lock_is_reported_and_rewritten(pins, tmp_path):
    lock = tmp_path / "constraints.txt"
    lock.write_text("pydantic==2.14.4\n    # via soorma\ncolorama==0.4.6 ; sys_platform == 'win32'\n")
    layers = tmp_path / "layers"
    layers.mkdir()
    layer = layers / "x.txt"
    layer.write_text("# a comment that stays\npydantic==2.14.3\n")
    assert pins.differences(layers, lock) == ["layers/x.txt: pydantic==2.14.3 but constraints.txt pins 2.14.4"]
    assert pins.write(layers, lock) == [layer]
    assert layer.read_text() == "# a comment that stays\npydantic==2.14.4\n"
    assert pins.differences(layers, lock) == []

    layer.write_text("numpy==2.4.6\n")
    assert pins.differences(layers, lock) == [
        "layers/x.txt: numpy is not in constraints.txt (add it to a pyproject.toml extra that the tests install, "
        "then `make lock`)"]
