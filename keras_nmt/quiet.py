"""A quiet TensorFlow start-up: no CUDA and absl noise on a machine without a GPU.

On a machine without a GPU, loading TensorFlow writes lines such as "WARNING: All log messages
before absl::InitializeLog() is called are written to STDERR", "cudart_stub.cc:31] Could not find
cuda drivers on your machine" and, when the devices are first listed, "cuda_platform.cc:52] failed
call to cuInit". C++ writes them before absl logging is initialised, so `TF_CPP_MIN_LOG_LEVEL`
does not hide them, and a new user reads the `E...cuInit` line as an error of ours.

`install()`, which `keras_nmt/__init__.py` calls, puts a finder at the front of `sys.meta_path`
that wraps the first import of `tensorflow` in the process, whichever module triggers it (one of
ours, `keras`, `tensorflow_text`, or the user's code after `import keras_nmt`), and then removes
itself. A finder needs no line in each module that imports TensorFlow, and `import keras_nmt`
stays free of TensorFlow. While TensorFlow's `__init__` runs and then
`tf.config.list_physical_devices()` initialises the devices (where cuInit is called), file
descriptor 2 points to a temporary file; afterwards every line except the known noise (`NOISE`)
is written back to stderr in order, so other warnings still show, only later. Exceptions raised
by the import propagate unchanged, after descriptor 2 is restored.

Nothing is hidden when the user asks for TensorFlow's messages: `KERAS_NMT_VERBOSE=1` (any value
but 0; keras_nmt then leaves TensorFlow's logging alone) or a `TF_CPP_MIN_LOG_LEVEL` of their
own. Otherwise `TF_CPP_MIN_LOG_LEVEL` is set to 3: TensorFlow's later C++ log lines are hidden
up to ERROR level (a failing op still raises a Python exception with its message; such E lines
are otherwise noise, e.g. oneDNN's "supports DT_INT32 only on platforms with AVX-512" at the
first training step). The value is recorded in `_KERAS_NMT_TF_CPP_MIN_LOG_LEVEL`: child
processes inherit both and so can tell the level keras_nmt chose from one the user set.

Limits: if TensorFlow was imported before keras_nmt, its start-up has already printed. If the
process dies inside the window (a fatal error in TensorFlow's C++ start-up), what was captured is
lost with it; `KERAS_NMT_VERBOSE=1` shows it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys

VERBOSE = "KERAS_NMT_VERBOSE"
LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LOG_LEVEL = "3"
DEFAULTED = "_KERAS_NMT_TF_CPP_MIN_LOG_LEVEL"  # the level keras_nmt set (not the user)

# The start of a C++ log line: absl's "I0000 00:00:1796309260.563448    3192 file.cc:31] ..." or
# TensorFlow's older "2024-01-31 12:00:00.123456: E external/.../file.cc:467] ...".
_PREFIX = rb"(?:[IWEF]\d{4} [\d:]+\.\d+ +\d+ |\d{4}-\d\d-\d\d [\d:.]+: [IWEF] )(?:\S*/)?"
NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|" + _PREFIX + rb"(?:"
    rb"port\.cc:\d+\] oneDNN custom operations are on\."
    rb"|cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\."
    # Only the two "no GPU here" answers: 303 is TensorFlow's CUDA stub finding no libcuda (no
    # driver), CUDA_ERROR_NO_DEVICE a driver without a visible GPU. Other cuInit errors show.
    rb"|cuda_platform\.cc:\d+\] failed call to cuInit: "
    rb".*(?:UNKNOWN ERROR \(303\)|CUDA_ERROR_NO_DEVICE)"
    rb"|cuda_(?:executor|dnn|fft|blas)\.cc:\d+\] Unable to register cu(?:DNN|FFT|BLAS) factory: "
    rb")"
)


def install() -> None:
    """Set TensorFlow's C++ log level and quiet its start-up, unless the user asked for its
    messages.

    Called once, by `keras_nmt/__init__.py`, before anything imports TensorFlow.
    """
    if os.environ.get(VERBOSE, "") not in ("", "0"):
        return
    level = os.environ.get(LOG_LEVEL)
    if level is not None and level != os.environ.get(DEFAULTED):
        return  # the user's own level: TensorFlow prints what it prints
    os.environ[LOG_LEVEL] = os.environ[DEFAULTED] = DEFAULT_LOG_LEVEL
    if "tensorflow" not in sys.modules and not any(
        isinstance(finder, _TensorFlowFinder) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _TensorFlowFinder())


def drop_noise(text: bytes) -> bytes:
    """`text` (what was written to stderr) without the lines that `NOISE` matches."""
    return b"".join(line for line in text.splitlines(keepends=True) if not NOISE.match(line))


@contextlib.contextmanager
def filtered_stderr():
    """Send file descriptor 2 (C++ and Python writes alike) to a temporary file for the block,
    then write what it received, minus the noise, to the real stderr, even if the block raised."""
    import tempfile

    _flush_stderr()  # what Python wrote before the block goes out first
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()  # what Python wrote in the block goes into the capture
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = drop_noise(captured.read())
            if kept:
                with open(2, "wb", closefd=False) as stderr:
                    stderr.write(kept)


def _flush_stderr() -> None:
    if sys.stderr is not None:
        sys.stderr.flush()


class _TensorFlowFinder:
    """A `sys.meta_path` finder for `tensorflow` alone: the first time it is asked, it removes
    itself and returns the spec the other finders give, with a loader that loads it quietly."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):  # another thread removed it first
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    """Runs TensorFlow's own loader and the first device listing inside `filtered_stderr()`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        # The module keeps TensorFlow's own loader; this one only wraps the call.
        module.__loader__ = module.__spec__.loader = self.loader
        with filtered_stderr():
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # initialises the devices: the cuInit line
