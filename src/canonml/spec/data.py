"""``data:`` — where examples come from, how they are split, cleaned and augmented."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from canonml.spec.base import StrictModel

# Registry names of canonml.data.sources.SOURCES; a contract test keeps the two equal.
SOURCE_SCHEMES = ("cifar10", "csv", "idx", "images", "sklearn")
SKLEARN_DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "wine")
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


class DataSpec(StrictModel):
    """Source, target and split of the data."""

    source: str = Field(
        description="scheme:arg — sklearn:NAME | csv:PATH | idx:DIR | cifar10:DIR | images:DIR",
        examples=["sklearn:digits", "csv:data/patients.csv"],
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
    def is_image_source(self) -> bool:
        return self.scheme in ("idx", "cifar10", "images") or self.source == "sklearn:digits"
