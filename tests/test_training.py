import json
import os

import pytest
import torch

from conftest import tiny_train_params
from torchstages.models.saved import load_model
from torchstages.training.loop import TrainOutputs, train


def test_training_writes_weights_card_checkpoint_and_curves(trained, tmp_path):
    outputs, card = trained
    model, loaded_card = load_model(outputs.weights, outputs.card)
    assert loaded_card == card and not model.training
    assert card["classes"] == ["class0", "class1", "class2"]
    assert card["preprocessing"]["image_size"] == [8, 8] and len(card["preprocessing"]["mean"]) == 1
    assert 1 <= card["best"]["epoch"] <= 6
    ckpt = torch.load(outputs.checkpoint, weights_only=True)
    assert (
        ckpt["epochs_done"] == 6
        and ckpt["finished"]
        and set(ckpt["model"]) == set(model.state_dict())
    )
    assert "state" in ckpt["optimizer"] and ckpt["best"]["epoch"] + 1 == card["best"]["epoch"]
    summary = json.loads((outputs.live_dir / "metrics.json").read_text())
    assert summary["step"] == 5 and summary["best"]["epoch"] == card["best"]["epoch"]
    loss_tsv = (outputs.live_dir / "plots/metrics/val/loss.tsv").read_text().splitlines()
    assert loss_tsv[0] == "step\tloss" and len(loss_tsv) == 7  # no timestamp column
    assert (outputs.live_dir / "plots/metrics/lr.tsv").exists()


def test_tiny_problem_is_learned(trained, processed):
    from torchstages.data.loader import Normalizer
    from torchstages.data.store import load_split
    from torchstages.evaluation.inference import predict_logits

    outputs, card = trained
    model, _ = load_model(outputs.weights, outputs.card)
    images, labels = load_split(processed, "val")
    prep = card["preprocessing"]
    logits = predict_logits(
        model,
        images,
        Normalizer(prep["mean"], prep["std"], torch.device("cpu")),
        4,
        torch.device("cpu"),
    )
    assert (logits.argmax(1).numpy() == labels).mean() >= 0.8


def test_same_params_give_byte_identical_weights(trained, tmp_path, processed):
    first, _ = trained
    again = TrainOutputs(
        tmp_path / "again/model.safetensors",
        tmp_path / "again/model.json",
        tmp_path / "again/checkpoint.pt",
        tmp_path / "again_live",
    )
    train(tiny_train_params(), processed, again)
    assert again.weights.read_bytes() == first.weights.read_bytes()
    assert again.card.read_bytes() == first.card.read_bytes()
    assert (again.live_dir / "metrics.json").read_bytes() == (
        first.live_dir / "metrics.json"
    ).read_bytes()
    other = TrainOutputs(
        tmp_path / "o/model.safetensors",
        tmp_path / "o/model.json",
        tmp_path / "o/checkpoint.pt",
        tmp_path / "o_live",
    )
    train(tiny_train_params(seed=4), processed, other)
    assert other.weights.read_bytes() != first.weights.read_bytes()


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_every_optimizer_and_the_mlp_train(tmp_path, processed, optimizer):
    outputs = TrainOutputs(
        tmp_path / "w.safetensors", tmp_path / "c.json", tmp_path / "k.pt", tmp_path / "live"
    )
    params = tiny_train_params(
        epochs=1,
        optimizer=optimizer,
        schedule={"name": "none"},
        model={"name": "mlp", "hidden": [8]},
    )
    card = train(params, processed, outputs)
    assert card["architecture"]["name"] == "mlp" and outputs.weights.exists()


def test_weight_decay_skips_biases_and_norms():
    from torchstages.models import build_model
    from torchstages.models.cnn import CNNSpec
    from torchstages.training.optim import build_optimizer

    model = build_model(CNNSpec(channels=[4]), 1, (4, 4), 2)
    opt = build_optimizer(tiny_train_params(weight_decay=0.1), model)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and all(p.ndim > 1 for p in decayed["params"])
    assert plain["weight_decay"] == 0.0 and all(p.ndim == 1 for p in plain["params"])


def test_checkpoint_bytes_do_not_depend_on_the_file_name(tmp_path):
    from torchstages.training.checkpoint import save_checkpoint

    state = {"model": {"w": torch.arange(4.0)}, "epochs_done": 1}
    save_checkpoint(tmp_path / "a/checkpoint.pt", state)
    save_checkpoint(tmp_path / "b/other.pt", state)
    assert (tmp_path / "a/checkpoint.pt").read_bytes() == (tmp_path / "b/other.pt").read_bytes()


def test_checkpoint_bytes_do_not_depend_on_which_objects_hold_equal_keys(tmp_path):
    """pickle writes a string once per object and refers back to it after. A resumed run's best
    weights come back from the checkpoint with keys of their own, where an uninterrupted run's
    share the live model's (a top-level parameter's name is one interned string): without
    canonical keys the resumed run's checkpoint differed in bytes, not in content."""
    from torchstages.training.checkpoint import load_resumable, save_checkpoint

    model = torch.nn.Linear(2, 1)
    model.register_parameter("adapter", torch.nn.Parameter(torch.ones(2)))
    live = model.state_dict()
    copied = {k: v.clone() for k, v in live.items()}  # the same key objects, as a live run's
    fresh = {"".join(list(k)): v.clone() for k, v in live.items()}  # as read back
    assert not any(a is b for a, b in zip(copied, fresh, strict=True))
    for name, best in (("live", copied), ("resumed", fresh)):
        state = {"fingerprint": "f", "epochs_done": 1, "model": live, "best": {"state": best}}
        save_checkpoint(tmp_path / f"{name}.pt", state)
    assert (tmp_path / "live.pt").read_bytes() == (tmp_path / "resumed.pt").read_bytes()
    loaded = load_resumable(tmp_path / "live.pt", "f", 2)
    assert loaded["model"]._metadata == live._metadata  # load_state_dict reads the versions
    assert torch.equal(loaded["best"]["state"]["adapter"], live["adapter"])


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "smooth_l1"])
def test_val_loss_of_values_is_squared_error_whatever_the_training_loss(loss):
    """As val cross-entropy is plain whatever the classification loss: a regression's val loss
    is the MSE of standardised values and a forecast's of scaled values, the numbers validate
    and test report, so runs trained with different losses compare."""
    from torchstages.params.train import TrainParams
    from torchstages.training.tasks import Forecast, Regression

    params = TrainParams.model_validate({"loss": loss, "huber_delta": 0.5})
    out, y = torch.tensor([[0.5], [-1.0], [2.0]]), torch.tensor([13.0, 6.0, 9.0])
    summed, squares = Regression(params, 10.0, 2.0).validation(out, y).tolist()
    standardized = (y - 10.0) / 2.0
    assert summed == pytest.approx(((out[:, 0] - standardized) ** 2).sum().item())
    assert squares == pytest.approx(((out[:, 0] * 2.0 + 10.0 - y) ** 2).sum().item())
    windows, targets = (
        torch.tensor([[0.0, 1.0], [2.0, 0.0]]),
        torch.tensor([[1.0, 1.0], [0.0, 3.0]]),
    )
    summed, _ = Forecast(params, 2).validation(windows, targets).tolist()
    assert summed == pytest.approx(((windows - targets) ** 2).mean(1).sum().item())


def _outputs(root):
    return TrainOutputs(root / "w.safetensors", root / "c.json", root / "k.pt", root / "live")


def _val_accuracy(outputs, processed):
    from torchstages.data.loader import Normalizer
    from torchstages.data.store import load_split
    from torchstages.evaluation.inference import predict_logits

    model, card = load_model(outputs.weights, outputs.card)
    images, labels = load_split(processed, "val")
    prep = card["preprocessing"]
    norm = Normalizer(prep["mean"], prep["std"], torch.device("cpu"))
    logits = predict_logits(model, images, norm, 64, torch.device("cpu"))
    return (logits.argmax(1).numpy() == labels).mean()


def test_ema_warms_up_so_a_short_run_saves_a_trained_average(tmp_path, processed):
    """ema_decay 0.999 over a run of a few dozen steps: with a fixed decay the saved average
    still held over 95% of the random initial weights and scored at chance."""
    from torchstages.training.loop import _ema_with_warmup

    averaged, current = [torch.zeros(3), torch.tensor([5])], [torch.ones(3), torch.tensor([7])]
    _ema_with_warmup(0.999)(averaged, current, torch.tensor(1))
    assert averaged[0].tolist() == pytest.approx([1 - 2 / 11] * 3) and averaged[1].item() == 7
    outputs = _outputs(tmp_path)
    train(tiny_train_params(ema_decay=0.999), processed, outputs)
    assert _val_accuracy(outputs, processed) >= 0.8


def test_a_last_train_batch_of_one_sample_is_merged(tmp_path, processed):
    """BatchNorm cannot normalise one sample: the train loader merges such a batch into the one
    before (it never did in training, and an MLP with batch_norm stopped with a traceback)."""
    from torchstages.data.store import load_split

    _, labels = load_split(processed, "train")
    params = tiny_train_params(
        epochs=1,
        batch_size=len(labels) - 1,
        model={"name": "mlp", "hidden": [8], "batch_norm": True},
    )
    train(params, processed, _outputs(tmp_path))
    summary = json.loads((tmp_path / "live/metrics.json").read_text())
    assert summary["step"] == 0


def test_a_diverged_run_stops_with_one_line_and_saves_nothing(tmp_path, processed):
    from torchstages.errors import UserError

    params = tiny_train_params(
        epochs=4, optimizer="sgd", lr=1e6, schedule={"name": "none"}, precision="fp32"
    )
    outputs = _outputs(tmp_path)
    with pytest.raises(
        UserError, match=r"train: val loss is nan after epoch \d of 4: training diverged"
    ):
        train(params, processed, outputs)
    assert not outputs.weights.exists() and not outputs.card.exists()


def test_a_summary_cut_off_by_a_kill_does_not_block_the_resume(tmp_path):
    """dvclive rewrites metrics.json in place; a kill inside that write left a file that every
    later resume failed to read. A row of a .tsv cut off the same way is dropped too."""
    from torchstages.training.progress import EpochLog

    live = tmp_path / "live"
    (live / "plots/metrics/val").mkdir(parents=True)
    (live / "metrics.json").write_text('{"step": 1, "val": {"lo')
    (live / "plots/metrics/val/loss.tsv").write_text("step\tloss\n0\t0.5\n1\t0.4\n2\t0.")
    with EpochLog(live, epochs=4, start=2) as log:
        log.epoch_end(2, {"val/loss": 0.3}, 1.0, 10, True, {"epoch": 3})
    assert json.loads((live / "metrics.json").read_text())["step"] == 2
    rows = (live / "plots/metrics/val/loss.tsv").read_text().splitlines()
    assert rows == ["step\tloss", "0\t0.5", "1\t0.4", "2\t0.3"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_device_is_one_line_before_torchrun_starts(processed):
    """Otherwise every process says it, above torchrun's traceback."""
    from torchstages.errors import UserError
    from torchstages.training.loop import check_before_launch

    params = tiny_train_params(nproc_per_node=2, device="cuda")
    with pytest.raises(UserError, match="^train.device: cuda was requested"):
        check_before_launch(params, processed)


def test_more_processes_than_gpus_is_one_line_before_torchrun_starts(processed, monkeypatch):
    """Otherwise each process beyond the last GPU fails on its device ordinal, above torchrun's
    traceback."""
    from torchstages.errors import UserError
    from torchstages.training.loop import check_before_launch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    params = tiny_train_params(nproc_per_node=4, device="cuda", batch_size=8)
    with pytest.raises(
        UserError, match="nproc_per_node: 4 processes .* has 2: set it to at most 2"
    ):
        check_before_launch(params, processed)


def test_ddp_on_apples_gpu_is_one_line_before_torchrun_starts(processed, monkeypatch):
    """gloo, DDP's backend on a Mac, fails on MPS tensors in every process."""
    from torchstages.errors import UserError
    from torchstages.training.loop import check_before_launch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    params = tiny_train_params(nproc_per_node=2, device="auto")
    with pytest.raises(UserError, match="nproc_per_node: 2 processes on Apple's MPS"):
        check_before_launch(params, processed)


def test_more_processes_than_cpu_cores_is_a_warning(processed, monkeypatch, caplog):
    from torchstages.training.loop import check_before_launch

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    check_before_launch(tiny_train_params(nproc_per_node=4, device="cpu", batch_size=8), processed)
    assert "4 processes on 2 CPU cores" in caplog.text
    caplog.clear()
    check_before_launch(tiny_train_params(nproc_per_node=2, device="cpu", batch_size=8), processed)
    assert "CPU cores" not in caplog.text


@pytest.mark.parametrize(
    "overrides",
    [
        # stops after its 3rd epoch: a resume that forgot the epochs without gain runs all 6
        {"early_stopping": {"patience": 2, "min_delta": 10}},
        # drops the lr after every epoch without gain: a resume that forgot it trains otherwise
        {"schedule": {"name": "plateau", "plateau_patience": 0}, "lr": 0.3},
    ],
    ids=["early-stopping", "plateau"],
)
def test_an_interrupted_run_resumes_its_stopping_and_schedule_state(
    processed, tmp_path, monkeypatch, overrides
):
    """test_resume_ddp kills whole stages (slow); this interrupts one in-process after epoch 2."""
    from torchstages.training import loop

    params = tiny_train_params(**overrides)
    straight = TrainOutputs(*(tmp_path / "a" / n for n in ("w.safetensors", "c.json", "k.pt")),
                            tmp_path / "a/live")  # fmt: skip
    train(params, processed, straight)
    resumed = TrainOutputs(*(tmp_path / "b" / n for n in ("w.safetensors", "c.json", "k.pt")),
                           tmp_path / "b/live")  # fmt: skip
    run_epoch = loop._run_epoch

    def interrupted(run, epoch, epoch_log):
        if epoch == 2:
            raise KeyboardInterrupt
        return run_epoch(run, epoch, epoch_log)

    monkeypatch.setattr(loop, "_run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(params, processed, resumed)
    monkeypatch.setattr(loop, "_run_epoch", run_epoch)
    train(params, processed, resumed)
    for name in ("weights", "card"):
        assert getattr(resumed, name).read_bytes() == getattr(straight, name).read_bytes()
