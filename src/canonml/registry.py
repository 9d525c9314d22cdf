"""``Registry``: components keyed by the string a spec uses, with did-you-mean misses."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from canonml.errors import SpecError

T = TypeVar("T")


def did_you_mean(word: str, choices: list[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the nearest choice, or ``""``."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def hint_and_choices(word: str, choices: list[str], label: str = "known") -> str:
    """``"; did you mean 'x'? known: a, b"``, or ``"; known: a, b"`` when nothing is close."""
    return f"{did_you_mean(word, choices) or ';'} {label}: {', '.join(choices)}"


class Registry(Generic[T]):
    """A name → component table that knows the spec path it serves."""

    def __init__(self, kind: str, spec_path: str) -> None:
        self.kind = kind
        self.spec_path = spec_path
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            choices = hint_and_choices(name, self.names())
            raise SpecError(self.spec_path, f"unknown {self.kind} '{name}'{choices}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
