"""configs/multi30k_en_de.yaml trains on ../shared/data/multi30k (skipped without it)."""

import pathlib
import subprocess
import sys

from tests.conftest import requires_shared

REPO = pathlib.Path(__file__).resolve().parents[1]


@requires_shared
def test_multi30k_config_trains_from_the_repository_root(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [
        "data.source_vocab_size=1000",
        "data.target_vocab_size=1000",
        "train.epochs=1",
        "train.steps_per_epoch=3",
        "train.tensorboard=false",
        "data.valid=null",
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_nmt.cli",
            "train",
            "--config",
            "configs/multi30k_en_de.yaml",
            "--run-dir",
            str(run_dir),
            *[arg for o in overrides for arg in ("--set", o)],
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train.en.gz / " in result.stdout and ": 29000 lines" in result.stdout
    assert "29000 pairs kept" in result.stdout or "dropped" in result.stdout
    assert (run_dir / "model.weights.h5").is_file()
