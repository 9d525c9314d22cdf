"""The tracking store's address and health: URIs, SQLite paths, quiet MLflow, retries.

Shared by the worker process (which writes) and ``canon runs`` (which reads). Nothing here
imports MLflow at module level.
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SQLITE = "sqlite:///"
# Worth another try: a busy SQLite file, a server that is down or overloaded.
_TRANSIENT = re.compile(
    r"locked|busy|connection|timed? ?out|temporar|service unavailable|max retries|too many requests"
    r"|\b50[0234]\b",
    re.IGNORECASE,
)
_QUIET_LOGGERS = ("mlflow", "alembic", "sqlalchemy", "urllib3", "git")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///FILE`` URI (query string dropped), else None."""
    if not uri.startswith(SQLITE):
        return None
    path = uri[len(SQLITE) :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def resolve_uri(uri: str, cwd: Path) -> str:
    """Make a relative ``sqlite:///FILE`` absolute against ``cwd``; other URIs unchanged."""
    path = sqlite_path(uri)
    if path is None or path.is_absolute():
        return uri
    query = uri[len(SQLITE) :].partition("?")[1:]
    return SQLITE + str((cwd / path).resolve()) + "".join(query)


def check_writable(path: Path) -> None:
    """Raise ``OSError`` with a plain reason if SQLite could not write ``path``.

    SQLite also writes a journal beside the file, so the directory must be writable too.
    """
    for parent in path.parents:  # the nearest part of the path that exists
        if parent.exists():
            if not parent.is_dir():
                raise OSError(f"{parent} is a file, not a directory")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the directory {path.parent}: {e.strerror}") from None
    if path.exists() and not path.is_file():
        raise OSError(f"{path} is not a file")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OSError(f"{path} is not writable (permission denied)")


def describe(exc: BaseException) -> str:
    """One line for a warning: ``(sqlite3.OperationalError) database is locked [SQL: …]``
    becomes ``database is locked``."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    errno = re.search(r"\[Errno -?\d+\] ([^'\"()\[\]]+)", text)
    if errno:  # deep inside an HTTP client's message: "Connection refused"
        return errno.group(1).strip()
    text = re.sub(r"^\([\w.]+\)\s*", "", text)  # SQLAlchemy's "(driver.Error)" prefix
    text = text.split(" [SQL:")[0]
    text = re.split(r"(?<=[\w)'\]])\. (?=[A-Z])", text)[0]  # the first sentence
    return text.strip().rstrip(".")[:240] or type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    return bool(_TRANSIENT.search(str(exc)))


def retry(fn: Callable[[], T], attempts: int, backoff: float) -> T:
    """Call ``fn``; on a transient error wait ``backoff``, ``2 * backoff``, ... and try again."""
    for attempt in range(max(1, attempts)):
        try:
            return fn()
        except Exception as e:
            if attempt + 1 >= attempts or not is_transient(e):
                raise
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def set_busy_timeout(seconds: float) -> None:
    """Make every new SQLite connection in this process wait ``seconds`` for a lock.

    MLflow opens its own engine and offers no setting for this; SQLite's default is 5 s.
    """
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    def on_connect(dbapi_connection: object, _record: object) -> None:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            dbapi_connection.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")  # type: ignore[attr-defined]

    event.listen(Pool, "connect", on_connect)


def limit_engine_retries() -> None:
    """Leave retrying to ``retry``: MLflow retries opening a database engine 10 times, for
    any error, waiting up to a minute and a half in all (a private setting, hence getattr)."""
    from mlflow.store.db import utils

    if isinstance(getattr(utils, "MAX_RETRY_COUNT", None), int):
        utils.MAX_RETRY_COUNT = 1


def quiet_logs() -> None:
    """MLflow, Alembic and SQLAlchemy log to stderr at INFO; keep only real problems."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def mlflow_warnings_ignored() -> Iterator[None]:
    """MLflow and SQLAlchemy warn about their own internals (deprecations); a user of
    ``canon runs`` can do nothing about them, so they are ignored while MLflow works."""
    with warnings.catch_warnings():
        for module in ("mlflow", "sqlalchemy", "alembic", "pydantic"):
            warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")
        yield
