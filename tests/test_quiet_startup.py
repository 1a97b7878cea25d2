"""TensorFlow's start-up noise is hidden (keras_nmt.quiet), and nothing else is.

Each end-to-end test runs a fresh Python in a subprocess, as a user would: the noise comes once
per process, from the first import of TensorFlow and the first device initialisation.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import keras_nmt
from keras_nmt import quiet

REPO = pathlib.Path(__file__).resolve().parents[1]

ONE_OP = "import keras_nmt.training.train, tensorflow as tf; print(int(tf.constant(1) + 1))"

# What a user would see without keras_nmt.quiet, on a machine without a GPU (TF 2.21).
ABSL_PRE_INIT = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
)
ONEDNN = (
    "I0000 00:00:1796309260.563448    3192 port.cc:153] oneDNN custom operations are on. You may "
    "see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`."
)
CUDART = (
    "I0000 00:00:1796309260.563737    3192 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used."
)
CUINIT = (
    "E0000 00:00:1796309262.985905    3192 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)"
)
CUDNN_FACTORY = (  # TensorFlow 2.15-2.17, with the CUDA libraries installed
    "2024-01-31 12:00:00.123456: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:9261] "
    "Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN when one "
    "has already been registered"
)


def fresh_environment(**changes: str) -> dict[str, str]:
    """This process's environment as a user's shell would have it (importing keras_nmt here set
    TF_CPP_MIN_LOG_LEVEL and its marker), with `changes`."""
    ours = (quiet.LOG_LEVEL, quiet.DEFAULTED, quiet.VERBOSE)
    return {**{k: v for k, v in os.environ.items() if k not in ours}, **changes}


def run_python(*args: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=fresh_environment(**environment),
        capture_output=True,
        text=True,
        timeout=600,
    )


def noise_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if quiet.NOISE.match(line.encode())]


def test_noise_pattern_matches_the_known_lines_only():
    """`NOISE` matches each known line (absl's and TensorFlow's older prefix) and no other line,
    in particular not a cuInit failure on a machine that has a GPU driver."""
    for line in (ABSL_PRE_INIT, ONEDNN, CUDART, CUINIT, CUDNN_FACTORY):
        assert quiet.NOISE.match(line.encode()), line
    kept = [
        CUINIT.replace("UNKNOWN ERROR (303)", "CUDA_ERROR_UNKNOWN: unknown error"),
        "W0000 00:00:1796309262.985905    3192 op_level_cost_estimator.cc:699] Error in cost",
        "/x/keras_nmt/models/seq2seq.py:3: DeprecationWarning: something that matters",
        "port.cc:153] oneDNN custom operations are on.",  # no log prefix: not TensorFlow's line
        "",
    ]
    for line in kept:
        assert not quiet.NOISE.match(line.encode()), line


def test_drop_noise_keeps_other_lines_in_order():
    text = "\n".join([ABSL_PRE_INIT, "first\r", ONEDNN, CUDART, "second", CUINIT, "no newline"])
    assert quiet.drop_noise(text.encode()) == b"first\r\nsecond\nno newline"


def test_import_keras_nmt_does_not_import_tensorflow():
    result = run_python("-c", "import sys, keras_nmt; print('tensorflow' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False\n"
    assert result.stderr == ""


@pytest.mark.parametrize(
    "environment",
    [{}, {quiet.LOG_LEVEL: quiet.DEFAULT_LOG_LEVEL, quiet.DEFAULTED: quiet.DEFAULT_LOG_LEVEL}],
    ids=["fresh", "inherited-from-a-keras-nmt-process"],
)
def test_python_api_starts_quietly(environment):
    result = run_python("-c", ONE_OP, **environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2\n"
    for marker in ("cuInit", "cudart_stub", "absl::InitializeLog", "oneDNN custom operations"):
        assert marker not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "environment",
    [{quiet.VERBOSE: "1"}],
    ids=["KERAS_NMT_VERBOSE"],
)
def test_noise_shows_when_asked_for(environment):
    result = run_python("-c", ONE_OP, **environment)
    assert result.returncode == 0, result.stderr
    if not noise_lines(result.stderr):
        pytest.skip("TensorFlow prints no start-up noise here (a GPU, or a build without CUDA)")
    assert "cuInit" in result.stderr or "cudart_stub" in result.stderr


def test_cli_version_prints_nothing_on_stderr():
    result = run_python("-m", "keras_nmt.cli", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == keras_nmt.__version__
    assert result.stderr == ""


# Runs `write` inside the quiet window: `Spy` is asked for a submodule that TensorFlow's
# __init__ imports, after keras_nmt's finder has redirected file descriptor 2.
SPY = """
import os, sys, warnings
import keras_nmt

outside = os.fstat(2)

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow.python":
            inside = os.fstat(2)
            redirected = (inside.st_dev, inside.st_ino) != (outside.st_dev, outside.st_ino)
            {write}
        return None

sys.meta_path.insert(0, Spy())
import keras_nmt.training.train
import tensorflow as tf
print(int(tf.constant(1) + 1))
"""


def test_other_stderr_output_in_the_quiet_window_is_passed_on():
    write = (
        'os.write(2, f"a C-level line, redirected={redirected}\\n".encode()); '
        'warnings.warn("an unrelated warning", UserWarning)'
    )
    result = run_python("-c", SPY.format(write=write))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2\n"
    lines = result.stderr.splitlines()
    assert "a C-level line, redirected=True" in lines, result.stderr
    assert sum("UserWarning: an unrelated warning" in line for line in lines) == 1, result.stderr
    assert "cuInit" not in result.stderr


def test_an_exception_during_the_import_surfaces_normally():
    result = run_python("-c", SPY.format(write='raise RuntimeError(f"boom {redirected}")'))
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1] == "RuntimeError: boom True"
