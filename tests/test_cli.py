"""The command line, end to end, in subprocesses (as a user runs it)."""

import io
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from keras_nmt import cli
from keras_nmt.run_dir import RunDir
from tests.conftest import toy_pairs, write_pairs
from tests.test_training import TINY

KERAS_NMT = [sys.executable, "-m", "keras_nmt.cli"]


def run(*args, stdin=None, cwd=None):
    return subprocess.run(
        [*KERAS_NMT, *args], input=stdin, capture_output=True, text=True, timeout=600, cwd=cwd
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("keras-nmt: error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def main(argv, capsys, stdin: str | None = None, monkeypatch=None):
    """Runs the CLI in this process: `(status, stdout, stderr)`."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    status = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, status, captured.out, captured.err)


@pytest.fixture
def config_file(tmp_path) -> pathlib.Path:
    path = tmp_path / "tiny.yaml"
    path.write_text("data:\n  valid: valid\n  test: null\ntrain:\n  epochs: 2\n")
    return path


def test_train_in_a_subprocess(toy_corpus_dir, config_file, tmp_path):
    run_dir = tmp_path / "run"
    overrides = [arg for o in TINY for arg in ("--set", o)]
    result = run(
        "train", "--config", str(config_file), "--run-dir", str(run_dir),
        "--set", f"data.dir={toy_corpus_dir}", *overrides, "--set", "train.epochs=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "48 pairs kept, 0 dropped with an empty side, 0 dropped as too long" in result.stdout
    # Not a terminal: one line per epoch, no progress bar.
    assert re.search(r"^epoch 1/1 \(\d+ s\): .*loss", result.stdout, re.M), result.stdout
    assert "\r" not in result.stdout
    for name in ("config.yaml", "source.model", "target.model", "model.weights.h5"):
        assert (run_dir / name).is_file()


def test_translate_and_evaluate_in_subprocesses(trained_run, toy_corpus_dir):
    result = run("translate", "--model", str(trained_run), stdin="one two\n\nthree four five\n")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.split("\n")
    assert len(lines) == 4 and lines[3] == "" and lines[1] == ""  # the empty line stays empty
    assert lines[0] and lines[2]

    source, reference = toy_corpus_dir / "valid.en", toy_corpus_dir / "valid.de"
    result = run("evaluate", "--model", str(trained_run), "--src", source, "--ref", reference)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "BLEU = " in result.stdout and "nrefs:1|case:mixed" in result.stdout
    assert "chrF = " in result.stdout


def test_translate_n_best_files_and_greedy_evaluation(
    trained_run, toy_corpus_dir, tmp_path, capsys, monkeypatch
):
    result = main(
        ["translate", "--model", trained_run, "--beam-size", "3", "--n-best", "2"],
        capsys, stdin="one two\nthree\n", monkeypatch=monkeypatch,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line.split(" ||| ")[0] for line in lines] == ["0", "0", "1", "1"]
    scores = [float(line.split(" ||| ")[2]) for line in lines]
    assert scores[0] >= scores[1] and scores[2] >= scores[3]  # best first

    output = tmp_path / "out.txt"
    source = toy_corpus_dir / "valid.en"
    result = main(
        ["translate", "--model", trained_run, "--input", source, "--output", output], capsys
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(output.read_text().splitlines()) == 8

    greedy = main(
        ["evaluate", "--model", trained_run, "--src", source,
         "--ref", toy_corpus_dir / "valid.de", "--beam-size", "1"],
        capsys,
    )  # fmt: skip
    assert greedy.returncode == 0 and "BLEU = " in greedy.stdout


def test_a_user_error_is_one_line_and_status_2_in_a_subprocess(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  attention: cosine\n")
    result = run("train", "--config", str(path), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(result, "model.attention: expected one of", "'cosine'")
    # Nothing else on stderr: no TensorFlow start-up lines either (keras_nmt.quiet).
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_misaligned_corpus_is_one_clear_line(toy_corpus_dir, config_file, tmp_path, capsys):
    (toy_corpus_dir / "train.de").write_text("ONE\n")
    result = main(
        ["train", "--config", config_file, "--run-dir", tmp_path / "run",
         "--set", f"data.dir={toy_corpus_dir}"],
        capsys,
    )  # fmt: skip
    assert_one_line_error(result, "misaligned corpus", "train.en has 48 lines", "train.de has 1")


def test_bad_config_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  attention: cosine\n")
    result = main(["train", "--config", path, "--run-dir", tmp_path / "run"], capsys)
    assert_one_line_error(result, "model.attention: expected one of", "'cosine'")
    result = main(["train", "--config", tmp_path / "none.yaml", "--run-dir", "x"], capsys)
    assert_one_line_error(result, "config file not found")


def test_model_directory_without_a_model(tmp_path, capsys, monkeypatch):
    result = main(["translate", "--model", tmp_path], capsys, "hello\n", monkeypatch)
    assert_one_line_error(result, "holds no trained model")
    result = main(["evaluate", "--model", tmp_path / "missing", "--src", "a", "--ref", "b"], capsys)
    assert_one_line_error(result, "model not found")


@pytest.mark.slow  # test_distribute.py proves the same resumption (killed, then equal weights)
def test_training_killed_mid_epoch_resumes(toy_corpus_dir, config_file, tmp_path):
    """SIGKILL from outside once a checkpoint inside the second epoch exists; the same
    command then finishes the run from the latest checkpoint instead of starting over."""
    run_dir = tmp_path / "run"
    args = [
        *KERAS_NMT, "train", "--config", str(config_file), "--run-dir", str(run_dir),
        "--strategy", "default",
        "--set", f"data.dir={toy_corpus_dir}", *[a for o in TINY for a in ("--set", o)],
        "--set", "train.epochs=3", "--set", "train.steps_per_epoch=40",
        "--set", "train.backup_every_steps=5",
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backup = run_dir / "backup"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            steps = [int(p.name[5:]) for p in backup.glob("ckpt-*")] if backup.is_dir() else []
            if any(40 < step < 80 for step in steps):
                break
            time.sleep(0.05)
        assert process.poll() is None, "training ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert len(RunDir(run_dir).finished_epochs()) <= 2

    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = re.search(
        r"resuming from .*: epoch (\d+), step (\d+), optimizer step (\d+)", result.stdout
    )
    assert resumed, result.stdout
    epoch, step, optimizer_step = map(int, resumed.groups())
    assert optimizer_step > 40 and optimizer_step == 40 * (epoch - 1) + step
    history = RunDir(run_dir).finished_epochs()
    assert [row["epoch"] for row in history] == [0, 1, 2]


def test_input_is_read_in_bounded_chunks():
    chunks = list(cli._line_chunks(io.StringIO("a\nb\r\n\nc\nd\n"), 2))
    assert chunks == [["a", "b"], ["", "c"], ["d"]]


def test_export_then_translate_and_evaluate_from_the_export(trained_run, tmp_path, capsys):
    write_pairs(tmp_path, "test", toy_pairs()[:10])
    sources, references = tmp_path / "test.en", tmp_path / "test.de"
    base = tmp_path / "export"
    exported = run(
        "export", "--model", str(trained_run), "--format", "saved_model",
        "--output-dir", str(base), "--name", "toy", "--set", "decode.beam_size=3",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert f"to {base / 'toy' / '1'}" in exported.stdout
    outputs = {}
    for name, model in (("run", trained_run), ("export", base / "toy")):
        result = main(
            ["translate", "--model", model, "--input", sources, "--n-best", "3",
             *(["--beam-size", "3"] if name == "run" else [])],
            capsys,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[name] = result.stdout.splitlines()
    assert len(outputs["export"]) == 30
    # Same hypotheses; scores printed to 4 decimals may differ in the last digit.
    assert [line.rsplit(" ||| ", 1)[0] for line in outputs["export"]] == [
        line.rsplit(" ||| ", 1)[0] for line in outputs["run"]
    ]
    evaluated = main(
        ["evaluate", "--model", base / "toy", "--src", sources, "--ref", references,
         "--beam-size", "1", "--lowercase", "--ter"],
        capsys,
    )  # fmt: skip
    assert evaluated.returncode == 0 and "BLEU = " in evaluated.stdout
    assert "case:lc" in evaluated.stdout and "TER = " in evaluated.stdout
    pictures = tmp_path / "pictures"
    plotted = main(
        ["translate", "--model", base / "toy", "--input", sources, "--plot-attention", pictures],
        capsys,
    )
    assert plotted.returncode == 0, plotted.stderr[-2000:]
    assert sorted(p.name for p in pictures.iterdir()) == [f"{i:06d}.png" for i in range(10)]

    assert_one_line_error(
        main(["export", "--model", trained_run, "--format", "saved_model",
              "--output-dir", base, "--name", "toy", "--version", "1"], capsys),
        "already exists",
    )  # fmt: skip
    assert_one_line_error(
        main(["export", "--model", trained_run, "--format", "saved_model",
              "--output-dir", base, "--set", "model.embedding_dim=8"], capsys),
        "only decode.* and export.*",
    )  # fmt: skip
    assert_one_line_error(
        main(["translate", "--model", base / "toy", "--beam-size", "4", "--input", sources],
             capsys),
        "beam 3 or greedily",
    )  # fmt: skip
    assert_one_line_error(
        main(["translate", "--model", base / "toy", "--length-penalty", "1.5",
              "--input", sources], capsys),
        "re-export with --set decode.length_penalty=1.5",
    )  # fmt: skip


def test_length_penalty_flag_rescores_the_same_hypotheses(trained_run, tmp_path, capsys):
    """`--length-penalty` reaches the search: GNMT's lp(n) = ((5 + n) / 6) ** alpha is 1 for
    one token and above 1 for more, so with alpha 1 a hypothesis scores log P / lp(n) >= log P."""
    sources = tmp_path / "sources.txt"
    sources.write_text("\n".join(s for s, _ in toy_pairs()[:8]) + "\n", encoding="utf-8")
    scored = {}
    for alpha in ("0", "1"):
        argv = ["translate", "--model", str(trained_run), "--input", str(sources)]
        argv += ["--beam-size", "3", "--n-best", "3", "--length-penalty", alpha]
        assert cli.main(argv) == 0
        lines = capsys.readouterr().out.splitlines()
        scored[alpha] = {
            (index, text): float(score)
            for index, text, score in (line.split(" ||| ") for line in lines)
        }
    same = scored["0"].keys() & scored["1"].keys()
    assert len(same) >= 8
    assert all(scored["1"][key] >= scored["0"][key] - 1e-4 for key in same)
    assert sum(scored["1"][key] > scored["0"][key] + 1e-3 for key in same) >= 4


@pytest.mark.slow  # five subprocesses that each load TensorFlow; test_export_tflite.py covers
# the same path in process
def test_tflite_export_translates_and_evaluates(trained_run, tmp_path):
    write_pairs(tmp_path, "test", toy_pairs()[:6])
    sources, references = tmp_path / "test.en", tmp_path / "test.de"
    model = tmp_path / "toy.tflite"
    exported = run(
        "export", "--model", str(trained_run), "--format", "tflite", "--output", str(model),
        "--quantize", "float16",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-2000:]
    outputs = {}
    for name, path in (("run", trained_run), ("tflite", model)):
        result = run("translate", "--model", str(path), "--input", str(sources), "--beam-size", "1")
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[name] = result.stdout.splitlines()
    assert len(outputs["tflite"]) == 6 and outputs["tflite"] == outputs["run"]
    evaluated = run(
        "evaluate", "--model", str(model), "--src", str(sources), "--ref", str(references)
    )
    assert evaluated.returncode == 0 and "BLEU = " in evaluated.stdout

    assert_one_line_error(
        run("export", "--model", str(trained_run), "--format", "tflite"), "--output FILE.tflite"
    )
    assert_one_line_error(
        run("translate", "--model", str(model), "--n-best", "2"), "one hypothesis"
    )
    assert_one_line_error(
        run(
            "translate",
            "--model",
            str(model),
            "--plot-attention",
            str(tmp_path / "p"),
            stdin="one two\n",
        ),
        "no attention output",
    )
