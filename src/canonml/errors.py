"""The one exceptions module: every error a user can cause is a ``CanonError``.

The CLI prints ``str(err)`` on one line and exits 2; any other exception is a bug.
Messages follow ``place: problem, got X (fix)``.
"""

from __future__ import annotations


class CanonError(Exception):
    """Base of every user-facing error; its text is one line naming the place and the fix."""


class SpecError(CanonError):
    """A spec value is wrong. ``path`` is the dotted spec path (``train.optimizer.lr``)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class DataError(CanonError):
    """A data file is missing or malformed; names the file and, where known, row and column."""

    def __init__(
        self,
        problem: str,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        path: str = "data.source",
    ) -> None:
        self.file, self.row, self.column, self.path = file, row, column, path
        where = path
        if file is not None:
            where += f": file '{file}'"
        if row is not None:
            where += f" row {row}"
        if column is not None:
            where += f" column '{column}'"
        super().__init__(f"{where}: {problem}")


class CheckpointError(CanonError):
    """A checkpoint or run directory cannot be used (missing, corrupt, from another spec)."""


class TrainingDiverged(CanonError):
    """Training stopped because the model collapsed or diverged (the message says since when);
    the run keeps its last checkpoint and writes no package."""


class DistributedError(CanonError):
    """A process of a distributed run lost the others (one of them crashed or was killed);
    the run keeps its last checkpoint."""


class PackageError(CanonError):
    """A model package is missing, corrupt, or does not match its manifest."""


class MissingExtraError(CanonError):
    """An optional dependency is not installed; the message gives the exact pip command."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"this needs the '{module}' package: pip install 'canonml[{extra}]'")


class CanonWarning(UserWarning):
    """Something a user should know that does not stop the run (a column left out, ...).

    Library code raises it with ``warnings.warn(text, CanonWarning, stacklevel=2)``; the CLI
    prints each one as a single ``warning: text`` line. The text follows the error style:
    the place, what happened, and the key that changes it.
    """
