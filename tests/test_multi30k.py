"""configs/multi30k_en_de.yaml trains on ../shared/data/multi30k (skipped without it)."""

import pathlib
import re

from keras_nmt import cli
from tests.conftest import requires_shared

REPO = pathlib.Path(__file__).resolve().parents[1]


@requires_shared
def test_multi30k_config_trains_from_the_repository_root(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    overrides = [
        "data.source_vocab_size=1000",
        "data.target_vocab_size=1000",
        "train.epochs=1",
        "train.steps_per_epoch=3",
        "train.tensorboard=false",
        "data.valid=null",
    ]
    monkeypatch.chdir(REPO)  # the config names the corpus relative to the repository
    status = cli.main(
        [
            "train",
            "--config",
            "configs/multi30k_en_de.yaml",
            "--run-dir",
            str(run_dir),
            *[arg for o in overrides for arg in ("--set", o)],
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err[-3000:]
    assert "train.en.gz / " in out and ": 29000 lines" in out
    # Every one of the 29,000 pairs is accounted for: kept or dropped for a stated reason.
    counts = re.search(
        r"training data: (\d+) pairs kept, (\d+) dropped with an empty side, "
        r"(\d+) dropped as too long",
        out,
    )
    assert counts, out
    kept, empty, long = map(int, counts.groups())
    assert kept + empty + long == 29000 and kept > 28000
    assert (run_dir / "model.weights.h5").is_file()
