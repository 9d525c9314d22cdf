"""``Spec``: the whole spec, its top-level keys and the cross-section rules."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from canonml.spec.base import StrictModel
from canonml.spec.compress import CompressSpec
from canonml.spec.data import DataSpec
from canonml.spec.evaluate import EvaluateSpec
from canonml.spec.explain import ExplainSpec
from canonml.spec.license import HELP, normalize_license
from canonml.spec.model import MLPSpec, ModelSpec
from canonml.spec.privacy import AuditSpec, PrivacySpec
from canonml.spec.search import SearchSpec
from canonml.spec.task import TASK_VARIANTS, ClassificationTask, Task, task_class, task_name
from canonml.spec.track import Track, TrackSpec
from canonml.spec.train import TrainSpec


class Spec(StrictModel):
    """One run: data → model → training → evaluation, tracked."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)] = Field(
        description="run and package name: lower-case letters, digits and '-'"
    )
    task: Task = Field(default_factory=ClassificationTask)
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    license: str | None = Field(
        None,
        description=f"the model's license for its card and manifest: {HELP}; "
        "unset means the card says it was not specified",
    )
    data: DataSpec
    model: ModelSpec = Field(default_factory=lambda: MLPSpec())
    train: TrainSpec = Field(default_factory=lambda: TrainSpec())
    evaluate: EvaluateSpec = Field(default_factory=lambda: EvaluateSpec())
    track: Track = Field(default_factory=lambda: TrackSpec())
    privacy: PrivacySpec = Field(
        default_factory=lambda: PrivacySpec(),
        description="differential privacy of the training (privacy.dp: DP-SGD with Opacus)",
    )
    audit: AuditSpec | None = Field(
        None,
        description="membership-inference audit after training (true, or its settings); on "
        "by default with privacy.dp",
    )
    explain: ExplainSpec | None = Field(
        None,
        description="attributions of the trained model's predictions (true, or its settings), "
        "with a deletion test and a model-randomisation check",
    )
    compress: CompressSpec | None = Field(
        None,
        description="pruned, int8 and distilled variants of the trained model, each a "
        "package measured beside it (true: prune and quantize with their defaults)",
    )

    search: SearchSpec | None = Field(
        None,
        description="hyper-parameter search with Optuna (canon search): trials over spec "
        "values, the best (or a picked) trial trained as the final run",
    )

    @field_validator("compress", mode="before")
    @classmethod
    def _compress_switch(cls, value: Any) -> Any:
        if value is True:
            return {"prune": [{}], "quantize": {}}
        return None if value is False else value

    @field_validator("audit", "explain", mode="before")
    @classmethod
    def _audit_switch(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("license")
    @classmethod
    def _spdx(cls, value: str | None) -> str | None:
        return None if value is None else normalize_license(value)

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, raw: Any) -> Any:
        """Fill the defaults that depend on the task, once, before anything is validated:
        ``evaluate.metrics`` (all of the task's), ``data.split.stratify`` (by class for
        classification) and ``data.preprocess.scale`` where the task has its own. A
        value the user gave is never rewritten; the rules check it."""
        if not isinstance(raw, dict):
            return raw
        privacy = raw.get("privacy")
        if isinstance(privacy, dict) and privacy.get("dp") and "audit" not in raw:
            raw = {**raw, "audit": {}}  # a private model's privacy is measured, not only claimed
        variant = task_class(task_name(raw.get("task")))
        if variant is None:
            return raw  # the task field reports the unknown name
        raw = dict(raw)
        evaluate = raw.get("evaluate")
        if isinstance(evaluate, dict | type(None)) and (evaluate or {}).get("metrics") is None:
            raw["evaluate"] = {**(evaluate or {}), "metrics": list(variant.metrics)}
        data = raw.get("data")
        split = data.get("split") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(split, dict | type(None)):
            if (split or {}).get("stratify") is None:
                raw["data"] = data = {
                    **data,
                    "split": {**(split or {}), "stratify": variant.stratify},
                }
        pre = data.get("preprocess") if isinstance(data, dict) else None
        if variant.scale and isinstance(data, dict) and isinstance(pre, dict | type(None)):
            if (pre or {}).get("scale") is None:  # a reconstruction's [0, 1] inputs
                raw["data"] = {**data, "preprocess": {**(pre or {}), "scale": variant.scale}}
        return variant.raw_defaults(raw)

    @model_validator(mode="after")
    def _cross_section(self) -> Spec:
        task = self.task
        for i, m in enumerate(self.evaluate.metrics or []):
            if m not in task.metrics:
                raise _at(
                    f"evaluate.metrics[{i}]",
                    f"'{m}' is not a {task.name} metric; known: {', '.join(task.metrics)}",
                )
        loss = self.train.loss
        if loss != "auto" and loss not in task.losses:
            owner = next((v for v in TASK_VARIANTS if loss in v.losses), None)
            needs = f" needs task: {owner.model_fields['name'].default};" if owner else ":"
            raise _at("train.loss", f"{loss}{needs} use {' or '.join((*task.losses, 'auto'))}")
        if self.data.split.stratify and not task.stratify:
            raise _at(
                "data.split.stratify",
                f"task {task.name} has no classes to stratify the split by; set it to false "
                "or leave it out",
            )
        arch = self.model.arch
        if arch not in task.archs:
            owner = next((v for v in TASK_VARIANTS if arch in v.archs), None)
            other = f"a {owner.model_fields['name'].default} model; " if owner else ""
            raise _at(
                "model.arch",
                f"{arch} is {other}task {task.name} trains {', '.join(task.archs)}"
                + (f" (or set task: {owner.model_fields['name'].default})" if owner else ""),
            )
        if self.evaluate.anomaly is not None and not task.scores_anomalies:
            raise _at(
                "evaluate.anomaly",
                f"anomaly detection scores reconstruction error; task {task.name} has none "
                "(use task: reconstruction)",
            )
        if self.data.scheme == "csv" and task.needs_target and not self.data.target:
            raise _at("data.target", "a csv source needs the target column's name")
        problem = task.cross_check(self)
        if problem is not None:
            raise _at(*problem)
        self._private_training()
        self._post_training_stages()
        return self

    def _post_training_stages(self) -> None:
        """``audit`` and ``explain`` read a supervised model of a table or images."""
        task, text = self.task, self.data.is_text_source
        on = f"task {task.name}" + (" on text" if text else "")
        stages = [
            (
                "audit",
                self.audit is not None and (not task.private or text),
                "membership inference scores each example's loss under a supervised model of "
                f"a table or images; {on} is not one (remove audit, or set audit: false)",
            ),
            (
                "explain",
                self.explain is not None and (not task.explains or text),
                "attributions are over the input features or pixels of a classifier; "
                f"{on} has none (remove explain, or use it with classification on a table "
                "or images)",
            ),
            (
                "compress",
                self.compress is not None and (not task.compresses or text),
                "compression shrinks a classifier's or regressor's graph over a table or "
                f"images; {on} is not one (remove compress)",
            ),
        ]
        for where, refused, message in stages:
            if refused:
                raise _at(where, message)
        if self.compress is not None:
            self._compression()

    def _compression(self) -> None:
        """``compress``'s rules: a student the task trains; under DP-SGD nothing that reads
        the training data again (that would spend privacy the run does not account for)."""
        cfg = self.compress
        assert cfg is not None
        if cfg.distill is not None and cfg.distill.student.arch not in self.task.archs:
            raise _at(
                "compress.distill.student.arch",
                f"{cfg.distill.student.arch} is not a model task {self.task.name} trains; use "
                f"one of {', '.join(a for a in self.task.archs if a != 'pretrained')}",
            )
        if cfg.distill is not None and cfg.distill.student.arch == "pretrained":
            raise _at(
                "compress.distill.student.arch", "a student is trained from scratch: use mlp or cnn"
            )
        dp = self.privacy.dp
        if dp is None or not dp.is_private:
            return
        reads = [
            ("compress.prune.epochs", any(p.epochs > 0 for p in cfg.prune)),
            ("compress.quantize.mode", cfg.quantize is not None and cfg.quantize.mode != "dynamic"),
            ("compress.distill", cfg.distill is not None),
        ]
        for where, refused in reads:
            if refused:
                raise _at(
                    where,
                    "under privacy.dp this would read the training data again, spending "
                    "privacy the run's ε does not include; prune with epochs: 0 and quantize "
                    "with mode: dynamic (post-processing keeps the guarantee)",
                )

    def _private_training(self) -> None:
        """privacy.dp's rules: a task and training settings DP-SGD can account for; a
        BatchNorm becomes GroupNorm (with a warning) unless ``strict``."""
        dp = self.privacy.dp
        if dp is None or not dp.is_private:
            return
        if not self.task.private:
            raise _at(
                "privacy.dp",
                f"DP-SGD clips one loss per example; task {self.task.name} has no such step "
                "(use it with classification or regression)",
            )
        train = self.train
        clashes = [
            (
                "train.grad_clip",
                train.grad_clip is not None,
                "DP-SGD clips each example's "
                "gradient to privacy.dp.max_grad_norm; remove train.grad_clip",
            ),
            (
                "train.grad_accum",
                train.grad_accum != 1,
                "DP-SGD's accountant counts one noisy step per batch; set train.grad_accum to 1",
            ),
            (
                "train.regularization",
                train.regularization.l1 > 0 or train.regularization.l2 > 0,
                "an explicit penalty's gradient is not clipped per example; use "
                "train.optimizer.weight_decay instead",
            ),
            (
                "train.precision",
                train.precision != "fp32",
                "Opacus computes per-example gradients in fp32; set train.precision: fp32",
            ),
            (
                "train.max_minutes",
                train.max_minutes is not None,
                "ε is derived for a known "
                "number of steps; train by epochs (remove train.max_minutes)",
            ),
        ]
        for where, clash, message in clashes:
            if clash:
                raise _at(where, message)
        if getattr(self.model, "batch_norm", False) and getattr(self.model, "norm", "") == "batch":
            if dp.strict:
                raise _at(
                    "privacy.dp.strict",
                    "BatchNorm mixes the examples of a batch, which DP-SGD cannot account for; "
                    "set model.norm: group (or model.batch_norm: false), or strict: false to "
                    "let canonml replace it",
                )
            import warnings

            from canonml.errors import CanonWarning

            warnings.warn(
                CanonWarning(
                    "privacy.dp: model.batch_norm's BatchNorm becomes GroupNorm (model.norm: "
                    "group; min(32, C) groups in a conv block as Opacus' validator makes it, "
                    "one in a dense layer): each example is normalised on its own, not each "
                    "channel over the batch, so the layer computes something else"
                ),
                stacklevel=2,
            )
            self.model = self.model.model_copy(update={"norm": "group"})


class CrossFieldError(ValueError):
    """A rule across sections; ``path`` says where the problem is."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


def _at(path: str, message: str) -> CrossFieldError:
    return CrossFieldError(path, message)
