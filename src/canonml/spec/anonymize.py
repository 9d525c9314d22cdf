"""``data.anonymize:`` — drop, pseudonymize, generalize and mask columns; enforce k-anonymity.

Applied to a table's string cells before they are typed. Each named column gets at most one
of drop, pseudonymize, generalize, mask; quasi_identifiers may also be generalized or
pseudonymized (that is how a class grows to k rows).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from canonml.spec.base import StrictModel

# The secret of the HMAC pseudonyms; read from the environment only, never from the spec.
PSEUDONYM_KEY_ENV = "CANON_PSEUDONYM_KEY"

# The kinds of canonml.data.pii.PII_KINDS (a test keeps the two equal).
PiiKind = Literal["email", "iban", "cn_id", "credit_card", "phone"]


def _named(v: str) -> str:
    if not v.strip():
        raise ValueError(f"a column name must not be empty, got '{v}'")
    return v


Column = Annotated[str, AfterValidator(_named)]
# Which lists name a column for one transform: a column gets at most one of them.
_TRANSFORMS = ("drop", "pseudonymize", "generalize", "mask")


class AnonymizeSpec(StrictModel):
    """What to remove or coarsen in the data before anything is learned from it."""

    drop: list[Column] = Field(
        default_factory=list, description="columns removed before anything else"
    )
    pseudonymize: list[Column] = Field(
        default_factory=list,
        description="columns whose every filled cell becomes 'id_' + the first 16 hex digits "
        "of HMAC-SHA256(key, cell stripped); the key is read from the environment variable "
        f"{PSEUDONYM_KEY_ENV} and never written; the same key gives the same pseudonyms",
    )
    generalize: dict[Column, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="column: N. A numeric column (at least half its filled cells are numbers, "
        "none written with a leading zero, the column not in data.categorical; then every "
        "filled cell must be a number) becomes bins of width N written '[30, 40)' (30 <= x < "
        "40); any other column keeps its first N characters and one '*' for each character "
        "cut ('02139' -> '021**'); missing cells stay missing",
        examples=[{"age": 10, "zip": 3}],
    )
    k: Annotated[int, Field(ge=2)] | None = Field(
        None,
        description="k-anonymity: rows whose combination of quasi_identifiers is shared by "
        "fewer than k rows are removed (after drop, pseudonymize and generalize)",
    )
    quasi_identifiers: list[Column] = Field(
        default_factory=list,
        description="the columns that together could single a person out (age, zip, sex); "
        "needed with k",
    )
    mask: list[Column] = Field(
        default_factory=list,
        description="free-text columns in which personal identifiers are replaced by "
        "[EMAIL], [PHONE], [IBAN], [CARD], [CN_ID]",
    )
    mask_kinds: list[PiiKind] = Field(
        default_factory=lambda: list(get_args(PiiKind)),
        min_length=1,
        description="the kinds of identifier that mask looks for",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AnonymizeSpec:
        if (self.k is None) != (not self.quasi_identifiers):
            raise ValueError(
                "k and quasi_identifiers go together: "
                + ("list the quasi_identifiers k counts over" if self.k else "set k (>= 2)")
            )
        lists = {
            "drop": self.drop,
            "pseudonymize": self.pseudonymize,
            "generalize": list(self.generalize),
            "mask": self.mask,
            "quasi_identifiers": self.quasi_identifiers,
        }
        for key, names in lists.items():
            repeated = sorted({c for c in names if names.count(c) > 1})
            if repeated:
                raise ValueError(f"{key} lists '{repeated[0]}' twice")
        seen: dict[str, str] = {}
        for key in (*_TRANSFORMS, "quasi_identifiers"):
            for name in lists[key]:
                other = seen.get(name)
                if other is not None and (key in _TRANSFORMS or other == "drop"):
                    raise ValueError(f"'{name}' is in both {other} and {key}; keep one")
                seen.setdefault(name, key)
        return self

    @property
    def columns(self) -> list[str]:
        """Every column the section names, each once, in the order written."""
        names = [*self.drop, *self.pseudonymize, *self.generalize, *self.mask]
        return list(dict.fromkeys([*names, *self.quasi_identifiers]))
