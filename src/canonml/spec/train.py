"""``train:`` — the loop: optimizer, schedule, regularisation, early stopping, threads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from canonml.spec.base import StrictModel

Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Decay = Annotated[float, Field(ge=0.0, lt=1.0)]


class OptimizerSpec(StrictModel):
    name: Literal["sgd", "momentum", "adam", "adamw"] = "adam"
    lr: Positive = 1.0e-3
    weight_decay: NonNegative = 0.0
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    betas: tuple[Decay, Decay] = Field(
        (0.9, 0.999),
        description="adam/adamw: decay rates of the gradient's running mean and square "
        "(GANs train with [0.5, 0.999], after DCGAN)",
    )


class ScheduleSpec(StrictModel):
    """Learning-rate schedule; ``step`` and ``plateau`` use ``gamma``; ``onecycle``,
    ``warmup_cosine`` and ``warmup_stable_decay`` rise over the first ``warmup`` share of the
    steps; with ``train.max_minutes`` the last two end where the budget is projected to end."""

    name: Literal[
        "none", "step", "cosine", "onecycle", "plateau", "warmup_cosine", "warmup_stable_decay"
    ] = "none"
    step_size: Annotated[int, Field(gt=0)] = 10
    gamma: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    patience: Annotated[int, Field(ge=0)] = 3
    warmup: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.3,
        description="onecycle, warmup_cosine: the share of all steps over which the learning "
        "rate rises linearly (warmup_cosine then decays it to 0 along a cosine)",
    )
    decay: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.2,
        description="warmup_stable_decay: the last share of the steps over which the rate "
        "falls linearly to 0 (before it, the rate stays at its peak)",
    )


class EarlyStoppingSpec(StrictModel):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best weights."""

    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: Annotated[int, Field(ge=1)] = 5
    min_delta: NonNegative = 0.0
    restore_best: bool = True


class RegularizationSpec(StrictModel):
    l1: NonNegative = 0.0
    l2: NonNegative = 0.0


class TrainSpec(StrictModel):
    epochs: Annotated[int, Field(gt=0, le=100_000)] = 30
    batch_size: Annotated[int, Field(gt=0)] = 64
    steps_per_epoch: Annotated[int, Field(gt=0)] | None = Field(
        None,
        description="batches per epoch, drawn from fresh seeded shuffles of the training "
        "split (default: one pass over it); training by steps is epochs × steps_per_epoch, "
        "and validation runs every steps_per_epoch batches",
    )
    max_minutes: Positive | None = Field(
        None,
        description="a time budget: training stops after the epoch in which this many minutes "
        "of training have passed (counted over resumes)",
    )
    grad_accum: Annotated[int, Field(ge=1, le=1024)] = Field(
        1,
        description="split each batch into this many micro-batches and sum their gradients "
        "before one update (the same update as the whole batch, with less memory)",
    )
    checkpoint_interval: Annotated[float, Field(ge=0.0, le=86400.0)] = Field(
        1.0,
        description="seconds between checkpoints at most: last.pt, best.safetensors and "
        "history.csv are written after the first epoch that ends this long after the last "
        "write (and after the last epoch); 0: after every epoch. A crash loses at most this "
        "and the epoch in progress; resuming is exact from any epoch",
    )
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)
    grad_clip: Positive | None = Field(None, description="clip the gradient norm to this value")
    early_stopping: EarlyStoppingSpec | None = None
    loss: Literal["auto", "cross_entropy", "mse", "mae", "huber", "bce"] = Field(
        "auto",
        description="auto: the task's usual loss (cross_entropy, mse; a GAN's own); bce: "
        "binary cross-entropy of a reconstruction in [0, 1]",
    )
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    threads: Literal["auto"] | Annotated[int, Field(gt=0, le=256)] = Field(
        "auto",
        description="torch intra-op threads; auto: 1 for small models, else all cores",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32",
        description="bf16: training batches run under autocast to bfloat16 (matrix products "
        "in bf16, weights, optimizer and evaluation in fp32); fp16: autocast to float16 with "
        "a gradient scaler, on CUDA only",
    )
    device: str = Field(
        "auto",
        description="where training runs: auto (CUDA when available, else CPU), cpu, cuda, "
        "cuda:N or mps; checkpoints and packages are device-independent (written from CPU "
        "copies), and evaluation after training runs on the CPU",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        import re

        if re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            return v
        raise ValueError(f"must be auto, cpu, cuda, cuda:N or mps, got {v!r}")

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, v: object) -> object:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 256):
            return v
        raise ValueError(f"must be 'auto' or a whole number from 1 to 256, got {v!r}")
