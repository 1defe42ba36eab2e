"""Every user error of the command line is one line on stderr and a non-zero exit status, never a traceback, and
comes before any work: bad flag values (type, finiteness, sign, range) name the flag and the value; contradicting
flags are refused rather than one silently winning; a missing optional dependency names the extra to install."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

import deeprnn
from deeprnn import backend, cli, layers, pipeline
from deeprnn.cli import main
from deeprnn.errors import DataError, ModelFileError
from deeprnn.pipeline.settings import MACHINE_SETTINGS

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_main(argv, capsys):
    """(exit status, stderr lines) of ``deeprnn ARGV`` run in this process (argparse exits, main returns)."""
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    return status, capsys.readouterr().err.strip().splitlines()


def run_program(*argv):
    return subprocess.run([sys.executable, "-m", "deeprnn", *argv], capture_output=True, text=True, cwd=REPO_ROOT)


def fake_checkpoint(path, epoch, val_loss):
    """A small model file with the metadata `deeprnn train` writes: what the CLI reads to describe a checkpoint."""
    model = deeprnn.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.build((None, 3))
    model.save(path, metadata={"config": {"recipe": "drums", "layers": 2, "cell": "lstm", "units": 16},
                               "training": {"epoch": epoch, "monitor": "val_loss", "val_loss": val_loss}})
    return path


BAD_VALUES = {
    "train": [("--lr", "nan"), ("--lr", "inf"), ("--lr", "-1"), ("--lr", "0"), ("--lr", "fast"),
              ("--clipnorm", "-1"), ("--clipnorm", "nan"), ("--units", "2.7"), ("--units", "0"),
              ("--layers", "-1"), ("--embedding-dim", "0"), ("--seq-len", "0"), ("--batch-size", "0"),
              ("--epochs", "0"), ("--dropout", "1"), ("--dropout", "-0.1"), ("--recurrent-dropout", "1.5"),
              ("--max-files", "0"), ("--time-budget", "0"), ("--time-budget", "nan"), ("--seed", "-1"),
              ("--seed", "1e3"), ("--blas-threads", "-1"), ("--device", "tpu"), ("--recipe", "jazz"),
              ("--cell", "transformer")],
    "generate": [("--num-steps", "0"), ("--num-steps", "ten"), ("--temperature", "-1"), ("--temperature", "nan"),
                 ("--top-k", "0"), ("--primer-steps", "-5"), ("--seed", "-3"), ("--blas-threads", "two")],
    "evaluate": [("--stride", "0"), ("--generation-stats", "0"), ("--seed", "x"), ("--split", "train")],
}
REQUIRED = {"train": [], "generate": ["--checkpoint", "nope.npz"], "evaluate": ["--checkpoint", "nope.npz"]}


@pytest.mark.parametrize("command, flag, value", [(command, flag, value) for command, cases in BAD_VALUES.items()
                                                  for flag, value in cases])
def test_a_bad_flag_value_is_one_line_naming_the_flag_and_the_value(command, flag, value, capsys):
    status, errors = run_main([command, *REQUIRED[command], flag, value], capsys)
    assert status == 2
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"deeprnn {command}: error: argument {flag}") and value in errors[0]


def test_the_program_prints_one_line_and_no_traceback():
    result = run_program("train", "--lr", "nan")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("deeprnn train: error: argument --lr: must be a finite number > 0, got nan "
                                     "(see deeprnn train --help)")


def test_version():
    result = run_program("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"deeprnn {deeprnn.__version__}"


@pytest.mark.parametrize("command", ["train", "generate", "evaluate", "show"])
def test_every_command_has_a_description(command, capsys):
    status, _ = run_main([command, "--help"], capsys)
    subparsers = next(action for action in cli.build_parser()._actions if action.choices and command in action.choices)
    description = subparsers.choices[command].description
    assert status == 0 and description and len(description) > 40


@pytest.mark.parametrize("argv, message", [
    (["generate", "--greedy", "--temperature", "0.5"], "--greedy takes the most likely token, --temperature 0.5"),
    (["generate", "--greedy", "--top-k", "5"], "--greedy takes the most likely token, so --top-k 5 would do nothing"),
    (["generate", "--temperature", "0", "--top-k", "5"], "--temperature 0 takes the most likely token, so --top-k 5"),
    (["generate", "--greedy", "--sample"], "argument --sample: not allowed with argument --greedy"),
    (["train", "--resume", "--overwrite"], "--resume continues the run in --out, --overwrite replaces it"),
])
def test_contradicting_flags_are_an_error_not_silently_resolved(argv, message, tmp_path, capsys):
    if argv[0] == "generate":
        argv = [*argv, "--checkpoint", str(fake_checkpoint(tmp_path / "best.npz", 1, 1.5))]
    status, errors = run_main(argv, capsys)
    assert status != 0 and len(errors) == 1 and message in errors[0], errors


def test_output_paths_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")
    checkpoint = str(fake_checkpoint(tmp_path / "best.npz", 1, 1.5))
    monkeypatch.setattr(cli, "require_modules", no_work)  # the last check before the work
    (tmp_path / "a_file").write_text("")
    cases = [(["generate", "--checkpoint", checkpoint, "--out", str(tmp_path)], "is a folder"),
             (["generate", "--checkpoint", checkpoint, "--out", str(tmp_path / "drums.png")], "expected a .mid"),
             (["generate", "--checkpoint", checkpoint, "--out", str(tmp_path / "a_file" / "x.mid")], "is a file"),
             (["evaluate", "--checkpoint", checkpoint, "--json", str(tmp_path)], "is a folder"),
             (["evaluate", "--checkpoint", checkpoint, "--json", str(tmp_path / "r.csv")], "expected a .json"),
             (["train", "--out", str(tmp_path / "a_file")], "is a file, not a folder")]
    for argv, message in cases:
        status, errors = run_main(argv, capsys)
        assert status == 1 and len(errors) == 1 and message in errors[0], (argv, errors)


def test_missing_checkpoint_and_missing_data_are_one_line_errors(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "nope.npz")]) == 1
    assert main(["evaluate", "--checkpoint", str(tmp_path)]) == 1
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert main(["generate", "--checkpoint", str(tmp_path / "notes.txt")]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3
    assert "nope.npz: checkpoint not found" in errors[0]
    assert "is a folder, not a checkpoint" in errors[1]
    assert "notes.txt" in errors[2]


def test_missing_data_and_nothing_to_resume_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 1
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--data", str(tmp_path)]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2
    assert "no such file or folder" in errors[0]
    assert "nothing to resume" in errors[1]


@pytest.mark.parametrize("command, module", [("train", "tqdm"), ("train", "music21"), ("generate", "matplotlib")])
def test_a_missing_optional_dependency_names_the_extra(command, module, tmp_path, capsys, monkeypatch):
    real_find_spec = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name, *args: None if name == module else real_find_spec(name, *args))
    argv = {"train": ["train", "--out", str(tmp_path / "run")],
            "generate": ["generate", "--checkpoint", str(fake_checkpoint(tmp_path / "best.npz", 1, 1.5)),
                         "--plot", "--out", str(tmp_path / "g.mid")]}[command]
    status, errors = run_main(argv, capsys)
    assert status == 1 and errors == [f"deeprnn {command}: error: the Python package {module} is missing: "
                                      "install the music extra (pip install -e '.[music]')"]


def test_a_missing_dependency_found_late_is_still_one_line(tmp_path, capsys, monkeypatch):
    def needs_tqdm(args):
        raise ModuleNotFoundError("No module named 'tqdm'", name="tqdm")
    monkeypatch.setitem(cli.COMMANDS, "show", needs_tqdm)
    status, errors = run_main(["show", str(tmp_path)], capsys)
    assert status == 1 and errors == ["deeprnn show: error: the Python package tqdm is missing: install the music "
                                      "extra (pip install -e '.[music]')"]


def test_checkpoint_messages_state_the_epoch_each_file_holds(tmp_path, capsys):
    fake_checkpoint(tmp_path / "best.npz", 2, 1.4)
    fake_checkpoint(tmp_path / "last.npz", 3, 1.5)
    assert main(["show", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "best.npz" in out[0] and "epoch 2, val_loss 1.400" in out[0]
    assert "last.npz" in out[1] and "epoch 3, val_loss 1.500" in out[1]


@pytest.mark.skipif(backend.cupy_or_none() is not None, reason="a GPU is present: --device gpu is valid here")
@pytest.mark.parametrize("command", [[sys.executable, "-m", "deeprnn", "train"],
                                     [sys.executable, str(REPO_ROOT / "examples" / "train_groove.py")]])
def test_device_gpu_without_a_gpu_is_one_line_and_exit_status_2(command):
    result = subprocess.run([*command, "--device", "gpu", "--data", "/nonexistent"], capture_output=True,
                            text=True, cwd=REPO_ROOT)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device gpu needs CuPy and a CUDA GPU" in lines[0]
    assert "Traceback" not in result.stderr


def test_the_cpu_runs_with_one_blas_thread_unless_told_otherwise(monkeypatch, capsys):
    """The measured setting (docs/performance.md) is applied by the program, not left to the user's shell."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):  # as if the shell asked for two (make test: 1)
        limits = cli.limit_blas_threads(cli.with_defaults(argparse.Namespace(), MACHINE_SETTINGS).blas_threads)
        blas = [pool for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
        limits.restore_original_limits()
    assert blas and all(pool["num_threads"] == 1 for pool in blas)
    asked = []
    monkeypatch.setattr(cli, "limit_blas_threads", asked.append)
    main(["evaluate", "--checkpoint", "nope.npz"])
    main(["evaluate", "--checkpoint", "nope.npz", "--blas-threads", "0"])
    assert asked == [1, 0]


def test_a_flag_typo_under_a_command_names_the_command(capsys):
    status, errors = run_main(["train", "--epocs", "3"], capsys)
    assert status == 2 and errors == ["deeprnn train: error: unrecognized arguments: --epocs 3 "
                                      "(see deeprnn train --help)"]


def test_a_file_that_is_not_a_model_file_is_said_to_be_one(tmp_path, capsys):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_loss\n1,2.0,2.1\n")
    for command in ("generate", "evaluate"):
        status, errors = run_main([command, "--checkpoint", str(history)], capsys)
        assert status == 1 and errors == [f"deeprnn {command}: error: --checkpoint {history}: not a model file (a "
                                          "checkpoint is the best.npz or last.npz that `deeprnn train` writes)"]


@pytest.mark.parametrize("error, one_line", [
    (DataError("info.csv: no drummer column"), True),
    (ModelFileError("best.npz: truncated"), True),
    (FileNotFoundError(2, "No such file or directory"), True),
    (KeyError("tokenizer"), False),
    (TypeError("unsupported operand"), False),
    (ValueError("a shape mismatch somewhere inside"), False),
])
def test_the_library_errors_are_one_line_and_anything_else_is_a_bug_with_its_traceback(error, one_line, capsys,
                                                                                         monkeypatch):
    def fails(args):
        raise error
    monkeypatch.setitem(cli.COMMANDS, "show", fails)
    monkeypatch.delenv("DEEPRNN_TRACEBACK", raising=False)
    status, errors = run_main(["show", "anywhere"], capsys)
    assert status == 1
    if one_line:
        assert len(errors) == 1 and errors[0].startswith("deeprnn show: error: "), errors
    else:
        assert errors[0] == "Traceback (most recent call last):" and type(error).__name__ in errors[-2], errors
        assert errors[-1].startswith("deeprnn show: this is a bug in deeprnn, not in what you asked for: please "
                                     "report it"), errors
    monkeypatch.setenv("DEEPRNN_TRACEBACK", "1")
    with pytest.raises(type(error)):
        main(["show", "anywhere"])


@pytest.mark.parametrize("command", ["train", "generate", "evaluate", "show"])
def test_out_of_memory_advice_names_only_flags_the_command_has(command, capsys, monkeypatch):
    def runs_out(args):
        raise MemoryError
    monkeypatch.setitem(cli.COMMANDS, command, runs_out)
    argv = {"train": ["train"], "generate": ["generate", "--checkpoint", "x.npz"],
            "evaluate": ["evaluate", "--checkpoint", "x.npz"], "show": ["show", "x"]}[command]
    status, errors = run_main(argv, capsys)
    assert status == 1 and len(errors) == 1 and errors[0].startswith(f"deeprnn {command}: error: out of memory (")
    flags = {action.option_strings[-1] for action in cli.build_parser().command_parsers[command]._actions
             if action.option_strings}
    named = {word.strip(",()") for word in errors[0].split() if word.startswith("--")}
    assert named <= flags, (named - flags)


def test_show_does_not_read_a_huge_history_and_counts_a_normal_one_in_chunks(tmp_path, capsys):
    fake_checkpoint(tmp_path / "best.npz", 2, 1.4)
    with open(tmp_path / "history.csv", "wb") as history:
        history.truncate(5 * 2**30)   # 5 GB, sparse: no disk used, but read whole it would be 5 GB of memory
    assert main(["show", str(tmp_path)]) == 0
    assert "5.0 GB: too large to be a run's loss history, not read" in capsys.readouterr().out
    (tmp_path / "history.csv").write_text("epoch,loss\n" + "".join(f"{epoch},1.0\n" for epoch in range(1, 8)))
    assert main(["show", str(tmp_path)]) == 0
    assert "loss per epoch (7 epochs)" in capsys.readouterr().out


def test_a_file_name_that_is_not_utf8_and_holds_a_newline_is_printed_escaped(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    fake_checkpoint(folder / "best.npz", 2, 1.4)
    os.close(os.open(os.path.join(os.fsencode(folder), b"pi\xffece\n1.mid"), os.O_CREAT | os.O_WRONLY))
    result = run_program("show", str(folder))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    midi_lines = [line for line in result.stdout.splitlines() if "generated MIDI" in line]
    assert len(midi_lines) == 1 and "pi\\udcffece\\n1.mid" in midi_lines[0], result.stdout


def test_under_make_a_run_folder_that_holds_a_run_says_the_make_command(tmp_path, capsys, monkeypatch):
    def holds_a_run(config, out, **kwargs):
        raise pipeline.RunExistsError(out, ["last.npz", "best.npz"])
    monkeypatch.setattr(cli, "train", holds_a_run)
    argv = ["train", "--out", str(tmp_path / "run")]
    monkeypatch.delenv("DEEPRNN_CALLED_AS", raising=False)
    status, errors = run_main(argv, capsys)
    assert status == 1 and errors == [f"deeprnn train: error: {tmp_path / 'run'} holds a training run (last.npz, "
                                      "best.npz); continue it with --resume, or start over with --overwrite"]
    monkeypatch.setenv("DEEPRNN_CALLED_AS", "make train")   # what the Makefile's train target sets
    status, errors = run_main(argv, capsys)
    assert status == 1 and errors == [f"deeprnn train: error: {tmp_path / 'run'} holds a training run (last.npz, "
                                      "best.npz); continue it with `make train ARGS=--resume`, or start over with "
                                      "`make train ARGS=--overwrite`"]


def test_a_pipe_given_as_checkpoint_or_primer_is_refused_without_opening_it(tmp_path, capsys):
    fifo = tmp_path / "x.mid"
    os.mkfifo(fifo)   # opening it to read would wait forever for a writer
    checkpoint = str(fake_checkpoint(tmp_path / "best.npz", 1, 1.5))
    cases = [(["generate", "--checkpoint", str(fifo)], f"--checkpoint {fifo}: is not a regular file"),
             (["evaluate", "--checkpoint", str(fifo)], f"--checkpoint {fifo}: is not a regular file"),
             (["generate", "--checkpoint", checkpoint, "--primer", str(fifo), "--out", str(tmp_path / "g.mid")],
              f"--primer {fifo}: is not a regular file")]
    for argv, message in cases:
        status, errors = run_main(argv, capsys)
        assert status == 1 and len(errors) == 1 and message in errors[0], errors
