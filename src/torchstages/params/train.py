"""``train`` section: model, loss, optimizer, schedule, early stopping, augmentation, devices."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, ValidationInfo, field_validator, model_validator

from torchstages.models import ModelSpec
from torchstages.models.cnn import CNNSpec
from torchstages.params.base import AS_WRITTEN, Section

# the keys every model card records; the others only when on, so that cards (and the reports
# drawn from them) of runs that use none stay byte-identical to those written before they existed
_ALWAYS_RECORDED = ("crop_padding", "hflip", "rotation")


class AugmentParams(Section):
    """Training-only augmentation of images, applied to whole batches on the device: one affine
    resample (crop, flips, rotation, zoom), then colour jitter and erasing; mixup and cutmix
    blend pairs of images and their labels."""

    crop_padding: int = Field(2, ge=0, description="random crop after padding by this many pixels")
    hflip: bool = Field(False, description="random horizontal flip (off: digits must not mirror)")
    rotation: float = Field(10.0, ge=0, le=180, description="random rotation range in degrees (±)")
    vflip: bool = Field(False, description="random vertical flip (aerial, microscope images)")
    zoom: tuple[float, float] = Field(
        (1.0, 1.0),
        description="random zoom range [min, max], a factor of each side (not of the area): "
        "1.25 shows the middle 80% of each side, 0.8 shrinks the image inside a black border; "
        "[1, 1] = off",
    )
    brightness: float = Field(
        0.0, ge=0, le=1, description="colour jitter: pixels scaled by a factor in [1-b, 1+b]"
    )
    contrast: float = Field(
        0.0, ge=0, le=1, description="colour jitter: contrast about the image's mean, [1-c, 1+c]"
    )
    saturation: float = Field(
        0.0, ge=0, le=1, description="colour jitter: saturation [1-s, 1+s] (colour images only)"
    )
    erasing: float = Field(
        0.0,
        ge=0,
        le=1,
        description="random erasing: share of images with a random black rectangle (2-33% of "
        "the area)",
    )
    mixup: float = Field(
        0.0,
        ge=0,
        description="mixup alpha (e.g. 0.2): each batch blended with a shuffled copy of itself, "
        "labels in the same share; 0 = off",
    )
    cutmix: float = Field(
        0.0,
        ge=0,
        description="cutmix alpha (e.g. 1.0): one box per batch, pasted into each image from "
        "another, labels by area; with mixup, each batch uses one of the two; 0 = off",
    )

    @field_validator("zoom")
    @classmethod
    def _zoom_range(cls, zoom: tuple[float, float]) -> tuple[float, float]:
        if not 0 < zoom[0] <= zoom[1]:
            raise ValueError("must be [min, max] with 0 < min <= max")
        return zoom

    @property
    def mixes(self) -> bool:
        """True when batches are blended (mixup or cutmix), which mixes their labels too."""
        return bool(self.mixup or self.cutmix)

    def later_settings_on(self) -> list[str]:
        """The settings beyond crop, flip and rotation that are on (params.yaml sets those three
        for every kind of data; the others only for images)."""
        return [key for key in self.recorded() if key not in _ALWAYS_RECORDED]

    def recorded(self) -> dict[str, Any]:
        """The settings as the model card records them: the first three always, others when on."""
        values = self.model_dump(mode="json")
        defaults = AugmentParams().model_dump(mode="json")
        return {k: v for k, v in values.items() if k in _ALWAYS_RECORDED or v != defaults[k]}


class ScheduleParams(Section):
    """Learning-rate schedule, applied per optimizer step (plateau: per epoch)."""

    name: Literal["none", "step", "multistep", "cosine", "onecycle", "plateau"] = Field(
        "cosine", description="none | step | multistep | cosine | onecycle | plateau"
    )
    warmup_epochs: float = Field(0.0, ge=0, description="linear warmup from 0 over these epochs")
    step_size: int = Field(10, ge=1, description="step: epochs between lr drops")
    milestones: list[PositiveInt] = Field(
        [20, 25], description="multistep: epochs at which lr drops (increasing, below epochs)"
    )
    gamma: float = Field(0.1, gt=0, le=1, description="step, multistep: lr multiplier per drop")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine: final lr as a fraction of lr")
    plateau_patience: int = Field(3, ge=0, description="plateau: epochs without val loss gain")
    plateau_factor: float = Field(0.1, gt=0, lt=1, description="plateau: lr multiplier per drop")

    def unreached(self, epochs: int) -> str | None:
        """What of this schedule ``epochs`` epochs would never reach (a multistep milestone, the
        end of the warmup), as ``key value``; None when it fits."""
        late = [m for m in self.milestones if m >= epochs] if self.name == "multistep" else []
        if late:
            return f"milestones {late}"
        if self.warmup_epochs >= epochs:
            return f"warmup_epochs {self.warmup_epochs:g}"
        return None

    @model_validator(mode="after")
    def _milestones_increase(self) -> ScheduleParams:
        # the lr drops once per milestone passed, so [25, 20] works as [20, 25] and [20, 20]
        # drops twice at 20: either is likelier a slip than meant (other schedules ignore them)
        if self.name == "multistep" and self.milestones != sorted(set(self.milestones)):
            raise ValueError(f"milestones {self.milestones} must be increasing epochs, each once")
        return self

    @model_validator(mode="after")
    def _onecycle_warms_up_by_itself(self) -> ScheduleParams:
        if self.name == "onecycle" and self.warmup_epochs:
            raise ValueError(
                "warmup_epochs does not apply to onecycle, which warms up over its first 30% of "
                "steps by itself: set warmup_epochs to 0 (or use cosine with warmup_epochs)"
            )
        return self


class EarlyStoppingParams(Section):
    patience: int = Field(
        0, ge=0, description="epochs without improvement before stopping; 0 = off"
    )
    monitor: Literal["val_loss", "val_accuracy"] = Field("val_loss", description="watched metric")
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="min or max is better; auto: min for loss, max for accuracy"
    )
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")


class TrainParams(Section):
    seed: int = Field(
        42,
        # torch.manual_seed's range (a negative one wraps around, as a uint64); beyond it, training
        # stopped with an overflow before its first batch
        ge=-(2**63),
        le=2**64 - 1,
        description="seed for weights, data order and augmentation",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto = cuda when available, else mps (Apple silicon), else cpu"
    )
    nproc_per_node: int = Field(
        1, ge=1, description="processes (GPUs) per node; > 1 launches torchrun with DDP"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="autocast dtype; auto = bf16 where it is native (CUDA, CPUs with "
        "AVX512-BF16/AMX), fp16 on older CUDA GPUs, else fp32 (MPS included)",
    )
    channels_last: Literal["auto"] | bool = Field(
        "auto", description="channels-last memory format; auto = on for convolutional models"
    )
    deterministic: bool = Field(
        True, description="deterministic algorithms; false enables cudnn.benchmark on CUDA"
    )
    compile: bool = Field(False, description="torch.compile the model")
    threads: int = Field(
        0,
        ge=0,
        description="CPU threads for torch; 0 = torch's default for images, 1 for tables, texts "
        "and series (faster there)",
    )
    epochs: int = Field(
        30, ge=1, description="passes over the train split (tables: see scale_to_rows)"
    )
    batch_size: int = Field(
        64,
        ge=1,
        description="samples per forward pass, over all processes; an optimizer step sees "
        "accumulate of them (tables: see scale_to_rows)",
    )
    scale_to_rows: bool = Field(
        True,
        description="tables: batch_size and epochs left at 64 and 30 follow the train rows "
        "(README 'Your own table'); false: used as written",
    )
    accumulate: int = Field(
        1, ge=1, description="gradient accumulation: batches per optimizer step"
    )
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = Field("adamw", description="optimizer")
    lr: float = Field(0.003, gt=0, allow_inf_nan=False, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum (sgd, rmsprop)")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd)")
    weight_decay: float = Field(
        0.0005, ge=0, description="weight decay (decoupled for adamw), never on biases and norms"
    )
    grad_clip_norm: float = Field(0.0, ge=0, description="clip gradients to this norm; 0 = off")
    loss: Literal["auto", "cross_entropy", "bce", "mse", "mae", "huber", "smooth_l1"] = Field(
        "auto",
        description="auto: cross_entropy for classes, mse for regression and forecasts; classes: "
        "cross_entropy, or bce (BCE-with-logits of the two logits' margin, the one-sigmoid binary "
        "recipe: the same loss as cross_entropy, two classes only); regression and forecasts: "
        "mse, mae, huber, smooth_l1",
    )
    huber_delta: float = Field(
        1.0, gt=0, description="huber / smooth_l1: where the loss turns linear (standardised units)"
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the targets")
    class_weights: Literal["none", "balanced"] = Field(
        "none", description="balanced: weight classes by inverse frequency in the train split"
    )
    ema_decay: float = Field(
        0.0, ge=0, lt=1, description="EMA of weights (e.g. 0.999), evaluated and saved; 0 = off"
    )
    monitor: Literal["auto", "val_accuracy", "val_loss"] = Field(
        "auto",
        description="validation metric that picks the best epoch's weights; auto: val_accuracy "
        "for images and texts, val_loss for tables (a finer ranking than accuracy on their "
        "small val splits) and for regression and forecasts; val_loss is plain cross-entropy, "
        "or the squared error of standardised values, whatever the training loss",
    )
    schedule: ScheduleParams = Field(default_factory=ScheduleParams)
    early_stopping: EarlyStoppingParams = Field(default_factory=EarlyStoppingParams)
    model: ModelSpec = Field(
        default_factory=CNNSpec,
        description="architecture, see models (tables and time series: mlp when unset)",
    )
    augment: AugmentParams = Field(default_factory=AugmentParams)

    @model_validator(mode="after")
    def _consistent(self) -> TrainParams:
        unfreeze = self.model.transfer.unfreeze_after
        if unfreeze >= self.epochs:
            raise ValueError(
                f"model.transfer.unfreeze_after ({unfreeze}) must be below epochs ({self.epochs})"
            )
        if self.batch_size % self.nproc_per_node:
            raise ValueError(
                f"batch_size {self.batch_size} must be divisible by nproc_per_node "
                f"{self.nproc_per_node} (each process takes an equal share)"
            )
        return self

    @model_validator(mode="after")
    def _schedule_within_epochs(self, info: ValidationInfo) -> TrainParams:
        # against epochs as the file writes them, not again when validated with derived values:
        # a table's default 30 epochs shrink with its train rows (scale_to_rows, to at least 5;
        # tables.training.TableTraining.defaults). Shrinking only lowers epochs, so what fails at the
        # written count fails at any shrunk one; one that only the shrunk count misses is named
        # where the rows are counted (tables.training)
        if not (info.context or {}).get(AS_WRITTEN):
            return self
        if unreached := self.schedule.unreached(self.epochs):
            raise ValueError(f"schedule.{unreached} would never come: epochs is {self.epochs}")
        return self
