"""How a stage ends: a user's mistake or a Ctrl-C is one line, a bug keeps its traceback."""

import pytest

from torchstages.errors import UserError, run_stage


def _raise(exc: BaseException):
    def main() -> None:
        raise exc

    return main


@pytest.mark.parametrize(
    ("exc", "code", "said"),
    [
        (
            UserError("params.yaml: train.lr: too small"),
            2,
            "error: params.yaml: train.lr: too small\n",
        ),
        (KeyboardInterrupt(), 130, "interrupted: nothing half-written is left; dvc repro runs"),
    ],
)
def test_a_stage_ends_with_one_line_and_its_exit_status(capsys, exc, code, said):
    with pytest.raises(SystemExit) as ended:
        run_stage(_raise(exc))
    assert ended.value.code == code
    err = capsys.readouterr().err
    assert err.startswith(said) and err.count("\n") == 1 and "Traceback" not in err


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_stage(_raise(ZeroDivisionError("a bug")))


def test_under_torchrun_only_the_first_process_says_it_was_interrupted(capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit) as ended:
        run_stage(_raise(KeyboardInterrupt()))
    assert ended.value.code == 130 and capsys.readouterr().err == ""
