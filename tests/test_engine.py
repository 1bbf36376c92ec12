"""Training engine: schedules, losses, early stopping, EMA, accumulation, runtime settings."""

import math
import resource

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from conftest import tiny_train_params
from torchstages.errors import UserError
from torchstages.params.train import ScheduleParams
from torchstages.training import runtime as runtime_module
from torchstages.training.loop import TrainOutputs, train
from torchstages.training.losses import build_loss, class_weights
from torchstages.training.runtime import configure
from torchstages.training.schedule import LRSchedule


def _schedule(steps_per_epoch=10, epochs=10, **kw):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    return LRSchedule(ScheduleParams(**kw), opt, epochs, steps_per_epoch), opt


@pytest.mark.parametrize(
    ("kw", "step", "expected"),
    [
        ({"name": "none"}, 55, 1.0),
        ({"name": "step", "step_size": 3, "gamma": 0.5}, 29, 1.0),
        ({"name": "step", "step_size": 3, "gamma": 0.5}, 30, 0.5),
        ({"name": "step", "step_size": 3, "gamma": 0.5}, 65, 0.25),
        ({"name": "multistep", "milestones": [2, 5], "gamma": 0.1}, 25, 0.1),
        ({"name": "multistep", "milestones": [2, 5], "gamma": 0.1}, 50, 0.01),
        ({"name": "cosine"}, 0, 1.0),
        ({"name": "cosine"}, 50, 0.5),
        ({"name": "cosine", "min_lr_ratio": 0.1}, 100, 0.1),
        ({"name": "cosine", "warmup_epochs": 2}, 9, 0.5),
        ({"name": "onecycle"}, 30, 1.0),
        ({"name": "onecycle"}, 0, 1 / 25),
    ],
)
def test_schedule_factors(kw, step, expected):
    schedule, opt = _schedule(**kw)
    assert schedule.apply(step) == pytest.approx(expected, rel=1e-6)
    assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-6)


def test_onecycle_ends_near_zero_and_warmup_rises_linearly():
    schedule, _ = _schedule(name="onecycle")
    assert schedule.factor(100) < 1e-4
    warm, _ = _schedule(name="none", warmup_epochs=1)
    assert [round(warm.factor(s), 2) for s in (0, 4, 9, 10)] == [0.1, 0.5, 1.0, 1.0]


def test_plateau_drops_after_patience_and_round_trips():
    schedule, _ = _schedule(name="plateau", plateau_patience=1, plateau_factor=0.5)
    for loss in (1.0, 1.0, 1.0):
        schedule.end_epoch(loss)
    assert schedule.factor(0) == 0.5
    fresh, _ = _schedule(name="plateau")
    fresh.load_state_dict(schedule.state_dict())
    assert fresh.factor(0) == 0.5


def test_param_groups_keep_their_own_base_lr():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD([{"params": [model.weight], "lr": 0.1}, {"params": [model.bias]}], lr=1.0)
    LRSchedule(ScheduleParams(name="cosine"), opt, 1, 10).apply(5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.5])


def test_balanced_class_weights_match_sklearn():
    labels = torch.tensor([0] * 6 + [1] * 3 + [2])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels.numpy())
    assert class_weights(labels, 3).tolist() == pytest.approx(expected.tolist())


def test_losses_take_logits_and_bce_needs_two_classes():
    logits, y = torch.tensor([[2.0, -1.0], [0.0, 3.0]]), torch.tensor([0, 1])
    ce = build_loss(tiny_train_params(), y, 2)(logits, y)
    assert ce == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item())
    bce = build_loss(tiny_train_params(loss="bce"), y, 2)(logits, y)
    margin = logits[:, 1] - logits[:, 0]  # the one logit of the binary recipe
    expected = torch.nn.functional.binary_cross_entropy_with_logits(margin, y.float())
    assert bce.item() == pytest.approx(expected.item())
    # so its probabilities are the softmax that evaluation and predict report: the same loss as
    # cross_entropy on two logits, smoothed or weighted as it is
    many, labels = (
        torch.randn(64, 2, generator=torch.Generator().manual_seed(0)),
        torch.arange(64) % 2,
    )
    labels[:40] = 0
    for options in ({"label_smoothing": 0.1}, {"class_weights": "balanced"}):
        same = [
            build_loss(tiny_train_params(loss=loss, **options), labels, 2)(many, labels)
            for loss in ("bce", "cross_entropy")
        ]
        assert same[0].item() == pytest.approx(same[1].item(), rel=1e-6), options
    with pytest.raises(UserError, match="train.loss: bce needs exactly 2 classes, the data has 3"):
        build_loss(tiny_train_params(loss="bce"), torch.tensor([0, 1, 2]), 3)


@pytest.mark.parametrize("native", [True, False])
def test_cpu_precision_auto_is_bf16_only_where_native(monkeypatch, native):
    monkeypatch.setattr(runtime_module, "cpu_has_native_bf16", lambda: native)
    runtime = configure(tiny_train_params(precision="auto"), torch.device("cpu"))
    assert runtime.amp_dtype == (torch.bfloat16 if native else None)
    assert runtime.precision_name() == ("bf16" if native else "fp32")
    assert runtime.scaler is None  # bf16 has fp32's range: no loss scaling
    assert torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("precision, tf32", [("fp32", False), ("bf16", True)])
def test_tf32_matmuls_only_when_precision_is_not_fp32(precision, tf32):
    """TF32 keeps 10 bits of an fp32 matmul's inputs: `precision: fp32` must mean fp32 on CUDA."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        configure(tiny_train_params(precision=precision), torch.device("cuda"))
        assert torch.backends.cuda.matmul.allow_tf32 is tf32
        assert torch.backends.cudnn.allow_tf32 is tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_cpu_training_reuses_freed_memory_instead_of_faulting_it_in_again():
    configure(tiny_train_params(), torch.device("cpu"))
    assert not torch.utils.deterministic.fill_uninitialized_memory
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):  # 48 MiB of activations, freed and allocated again
        torch.ones(12 << 20).sum()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # glibc's default maps and unmaps blocks over 32 MiB every time: 12,288 page faults each, 10x;
    # kept, the block is faulted in once or twice before the heap settles (twice: Python 3.13).
    # The count is the whole process's, so other threads of the session add a few thousand now
    # and then: the bound is half of what the default costs, which only reuse stays under.
    assert faults < 5 * 12288


def test_cpu_precision_explicit_choices(caplog):
    cpu = torch.device("cpu")
    assert configure(tiny_train_params(precision="fp32"), cpu).amp_dtype is None
    assert configure(tiny_train_params(precision="bf16"), cpu).amp_dtype == torch.bfloat16
    assert configure(tiny_train_params(precision="fp16"), cpu).amp_dtype is None
    assert "fp16 applies to CUDA only" in caplog.text


def test_channels_last_auto_is_on_for_convolutional_models_only():
    cpu = torch.device("cpu")
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    auto = configure(tiny_train_params(channels_last="auto"), cpu)
    assert auto.for_model(cnn).channels_last is True
    assert auto.for_model(cnn).memory_format == torch.channels_last
    assert auto.for_model(mlp).channels_last is False
    assert auto.for_model(mlp).memory_format == torch.contiguous_format
    forced = configure(tiny_train_params(channels_last=True), cpu)
    assert forced.for_model(mlp).channels_last is True
    off = configure(tiny_train_params(channels_last=False), cpu)
    assert off.for_model(cnn).channels_last is False


def _outputs(tmp_path, name):
    d = tmp_path / name
    return TrainOutputs(d / "w.safetensors", d / "card.json", d / "ckpt.pt", d / "live")


def test_early_stopping_records_when_it_stopped(tmp_path, processed, caplog):
    params = tiny_train_params(early_stopping={"patience": 1, "min_delta": 10.0})
    with caplog.at_level("INFO", logger="torchstages"):
        card = train(params, processed, _outputs(tmp_path, "es"))
    # epoch 0 sets the reference; epoch 1 cannot improve by 10 -> stop after 2 epochs
    assert card["epochs_run"] == 2
    summary = (tmp_path / "es/live/metrics.json").read_text()
    assert '"stopped_early_at_epoch": 2' in summary
    assert "train: stopped early after epoch 2 of 6: val_loss did not improve for 1 epochs" in (
        caplog.text
    )
    # the same rule on a run whose last epoch is where it would stop: it ran its course
    caplog.clear()
    with caplog.at_level("INFO", logger="torchstages"):
        card = train(params.model_copy(update={"epochs": 2}), processed, _outputs(tmp_path, "all"))
    assert card["epochs_run"] == 2 and "stopped early" not in caplog.text
    assert '"stopped_early_at_epoch": null' in (tmp_path / "all/live/metrics.json").read_text()
    lines = (tmp_path / "es/live/plots/metrics/lr.tsv").read_text().splitlines()
    assert len(lines) == 3


def test_ema_weights_are_what_gets_saved(tmp_path, processed):
    plain = train(tiny_train_params(epochs=2), processed, _outputs(tmp_path, "plain"))
    ema = train(tiny_train_params(epochs=2, ema_decay=0.5), processed, _outputs(tmp_path, "ema"))
    assert ema["ema"] and not plain["ema"]
    a = (tmp_path / "plain/w.safetensors").read_bytes()
    assert (tmp_path / "ema/w.safetensors").read_bytes() != a


def test_accumulation_equals_the_larger_batch(tmp_path, processed):
    """2 × 4 accumulated == 8 at once, for a model without batch statistics or dropout."""
    common = {
        "epochs": 1,
        "optimizer": "sgd",
        "momentum": 0.0,
        "schedule": {"name": "none"},
        "augment": {"crop_padding": 0, "rotation": 0.0},
        "weight_decay": 0.0,
        "model": {"name": "mlp", "hidden": [16], "dropout": 0.0},
        "precision": "fp32",  # an exact identity; bf16 rounding differs between the batch shapes
    }
    from safetensors.torch import load_file

    train(tiny_train_params(batch_size=8, **common), processed, _outputs(tmp_path, "big"))
    train(
        tiny_train_params(batch_size=4, accumulate=2, **common),
        processed,
        _outputs(tmp_path, "acc"),
    )
    big, acc = load_file(tmp_path / "big/w.safetensors"), load_file(tmp_path / "acc/w.safetensors")
    assert all(torch.allclose(big[k], acc[k], atol=1e-6) for k in big)


def test_gradient_clipping_and_every_schedule_train(tmp_path, processed):
    for name in ("step", "multistep", "onecycle", "plateau"):
        card = train(
            tiny_train_params(epochs=1, grad_clip_norm=0.5, schedule={"name": name}),
            processed,
            _outputs(tmp_path, name),
        )
        assert math.isfinite(card["best"]["value"])


def test_class_weights_and_label_smoothing_train(tmp_path, processed):
    card = train(
        tiny_train_params(epochs=1, class_weights="balanced", label_smoothing=0.1),
        processed,
        _outputs(tmp_path, "w"),
    )
    assert card["epochs_run"] == 1


def test_training_loader_never_yields_a_single_sample_batch():
    from torchstages.data.loader import BatchLoader, Normalizer

    images, labels = torch.zeros(9, 1, 2, 2, dtype=torch.uint8), torch.arange(9)
    norm = Normalizer((0.0,), (1.0,), torch.device("cpu"))
    train_loader = BatchLoader(
        images, labels, 4, norm, training=True, generator=torch.Generator().manual_seed(0)
    )
    assert [len(y) for _, y in train_loader] == [4, 5] and len(train_loader) == 2
    assert sorted(torch.cat([y for _, y in train_loader]).tolist()) == list(range(9))
    assert [len(y) for _, y in BatchLoader(images, labels, 4, norm)] == [4, 4, 1]


def _pretrained_file(tmp_path, processed):
    from safetensors.torch import save_file

    from torchstages.models import build_model

    model = build_model(tiny_train_params().model, 1, (8, 8), 3)
    path = tmp_path / "pre.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model.state_dict()


def test_frozen_backbone_trains_only_the_head_then_unfreezes(tmp_path, processed):
    from safetensors.torch import load_file

    path, start = _pretrained_file(tmp_path, processed)
    model = {
        "name": "cnn",
        "channels": [4, 8],
        "convs_per_block": 1,
        "transfer": {"pretrained": str(path), "freeze": "backbone"},
    }
    train(tiny_train_params(epochs=2, model=model), processed, _outputs(tmp_path, "frozen"))
    frozen = load_file(tmp_path / "frozen/w.safetensors")
    conv = "features.0.weight"
    assert torch.equal(frozen[conv], start[conv])
    assert not torch.equal(frozen["head.3.weight"], start["head.3.weight"])

    model["transfer"] = {**model["transfer"], "unfreeze_after": 1, "backbone_lr_scale": 0.5}
    params = tiny_train_params(epochs=2, model=model, monitor="val_loss")
    train(params, processed, _outputs(tmp_path, "unfrozen"))
    unfrozen = load_file(tmp_path / "unfrozen/w.safetensors")
    assert not torch.equal(unfrozen[conv], start[conv])


def test_backbone_param_groups_get_the_scaled_lr():
    from torchstages.models import build_model, split_head_backbone
    from torchstages.training.optim import build_optimizer

    model = build_model(tiny_train_params().model, 1, (8, 8), 3)
    backbone = {id(p) for p in split_head_backbone(model)[1]}
    opt = build_optimizer(tiny_train_params(lr=0.1), model, backbone, 0.25)
    lrs = {(g["lr"], g["weight_decay"] > 0) for g in opt.param_groups}
    assert lrs == {(0.1, True), (0.1, False), (0.025, True), (0.025, False)}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_the_resume_fingerprint_changes_with_every_array_training_reads(processed):
    """A checkpoint resumes only on the same data: changed val images must start a new run,
    or the best epoch it kept was chosen on images that are gone. Test's arrays are not read."""
    import numpy as np

    from torchstages.io import write_npy
    from torchstages.training.checkpoint import fingerprint

    first = fingerprint({}, processed)
    for name in sorted(p.name for p in processed.glob("*.npy")):
        array = np.load(processed / name)
        write_npy(processed / name, array[::-1].copy())  # the same values, in another order
        changed = fingerprint({}, processed) != first
        write_npy(processed / name, array)
        assert changed == name.startswith(("train_", "val_")), name
    assert fingerprint({}, processed) == first and fingerprint({"lr": 0.1}, processed) != first


def test_an_unfinished_checkpoint_of_other_params_is_named_when_dropped(tmp_path, caplog):
    from torchstages.training.checkpoint import load_resumable, save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"fingerprint": "old", "epochs_done": 3, "finished": False})
    with caplog.at_level("INFO", logger="torchstages"):
        assert load_resumable(path, "old", epochs=6)["epochs_done"] == 3  # the same run resumes
        assert "unfinished" not in caplog.text
        assert load_resumable(path, "new", epochs=6) is None  # e.g. epochs raised after a kill
    assert "holds 3 epochs of an unfinished run with other train params or data" in caplog.text
    caplog.clear()
    save_checkpoint(path, {"fingerprint": "old", "epochs_done": 6, "finished": True})
    with caplog.at_level("INFO", logger="torchstages"):
        assert load_resumable(path, "new", epochs=6) is None  # a finished run: nothing lost
    assert caplog.text == ""


def test_evaluation_runs_in_eval_mode_and_leaves_the_mode_as_it_was():
    """Dropout left on would make every val and test score noisy and lower."""
    from torch import nn

    from torchstages.data.loader import OnDevice
    from torchstages.evaluation.inference import predict_logits

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 2)).train()
    x = torch.randn(32, 4)
    cpu = torch.device("cpu")
    got = predict_logits(model, x.numpy(), OnDevice(cpu), 8, cpu)
    assert model.training  # as the training loop left it
    with torch.no_grad():  # batches of 8 against one of 32: the last float bits may differ
        assert torch.allclose(got, model.eval()(x), atol=1e-5)


def test_the_best_epoch_by_accuracy_breaks_ties_by_the_lower_loss():
    from torch import nn

    from torchstages.training.tracking import BestWeights

    best, model = BestWeights("val_accuracy"), nn.Linear(2, 2)
    assert best.update(0, 1.0, 0.8, model)
    assert best.update(1, 0.5, 0.8, model) and best.epoch == 1  # same accuracy, lower loss
    assert not best.update(2, 0.7, 0.8, model) and best.epoch == 1
    assert not best.update(3, 0.1, 0.7, model)  # a lower loss does not beat more accuracy
