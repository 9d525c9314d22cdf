"""The tracking worker: ``python -m canonml.track.worker``, started by ``MlflowTracker``.

It runs beside training so that importing MLflow and opening (or creating) the store cost
the run no time. Protocol, one JSON object per line:

- stdin: the config (``uri``, ``experiment``, ``name``, ``start_ms``, ``attempts``,
  ``backoff``, ``busy_timeout``); then, once the package is written, optionally
  ``{"model": {"package_dir", "example", "register"}}`` (logged at once, while the parent
  writes its report); then one payload (``status``; when ``FINISHED`` also ``name``,
  ``params``, ``metrics`` (per epoch) and ``final`` (the test metrics) as
  ``[key, value, ms, step]``, ``tags``, ``artifact_dir``, ``end_ms``). End of input before
  a payload means the parent is gone.
- stdout: ``{"event": "ready", "run_id", "error"}`` once the run exists (or could not be
  created), then ``{"event": "done", "run_id", "model_id", "error"}``.

Nothing else ever reaches stdout: anything MLflow prints goes to stderr, which the parent
keeps for its warning.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TextIO, TypeVar

from canonml.track.store import (
    check_writable,
    describe,
    limit_engine_retries,
    quiet_logs,
    retry,
    set_busy_timeout,
    sqlite_path,
)

T = TypeVar("T")
# Large, and summarised by the metrics and the package (which becomes the MLflow model).
SKIP = ("checkpoints",)
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS = 1000, 100, 100  # MLflow's log_batch limits


class Session:
    """One MLflow run: opened when the worker starts, recorded when the payload arrives."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.uri: str = config["uri"]
        self.experiment: str = config["experiment"]
        self.name: str = config["name"]
        self.start_ms: int = config["start_ms"]
        self.attempts: int = config.get("attempts", 3)
        self.backoff: float = config.get("backoff", 0.5)
        self.client: Any = None
        self.run_id: str | None = None
        self.model_id: str | None = None
        self.model: dict[str, Any] | None = None  # the package to log, until it is logged
        self.model_error: str | None = None
        self.experiment_id: str | None = None
        self.error: str | None = None

    def open(self) -> None:
        """Create the run (and the store and experiment if need be); remember any error."""
        try:
            path = sqlite_path(self.uri)
            if path is not None:
                check_writable(path)
            self.run_id = retry(self._create_run, self.attempts, self.backoff)
            self.error = None
        except Exception as e:
            self.error = describe(e)

    def package_ready(self, model: dict[str, Any]) -> None:
        """Log the package as the run's MLflow model now (the parent still writes its report);
        if the run could not be created yet, it is logged with the rest at the end."""
        self.model = model
        if self.run_id is not None:
            self._log_model_once()

    def close(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Record a finished run, or mark a failed one; returns the ``done`` message."""
        status = payload.get("status", "FINISHED")
        if status != "FINISHED":
            self._terminate(status, payload.get("end_ms"))
            return {"run_id": self.run_id, "error": None}
        if self.run_id is None:
            self.open()  # the start failed (a locked file, a server down): one more try
        if self.run_id is None:
            return {"run_id": None, "error": self.error}
        try:
            self._record(payload)
        except Exception as e:
            self._terminate("FAILED", payload.get("end_ms"))
            return {"run_id": self.run_id, "error": describe(e)}
        return {"run_id": self.run_id, "model_id": self.model_id, "error": None}

    def _create_run(self) -> str:
        from mlflow.tracking import MlflowClient

        if self.client is None:
            self.client = MlflowClient(tracking_uri=self.uri)
        tags = {"mlflow.source.name": "canon", "mlflow.source.type": "LOCAL"}
        tags.update({k: v for k, v in (("mlflow.user", _user()), _git_commit()) if k and v})
        run = self.client.create_run(
            self._experiment_id(), start_time=self.start_ms, tags=tags, run_name=self.name
        )
        self.experiment_id = str(run.info.experiment_id)
        return str(run.info.run_id)

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        path = sqlite_path(self.uri)
        # Artefacts go beside the database file, not into whatever directory we run from.
        location = (path.parent / "mlartifacts").as_uri() if path is not None else None
        try:
            return str(self.client.create_experiment(self.experiment, location))
        except Exception:
            found = self.client.get_experiment_by_name(self.experiment)  # created meanwhile
            if found is None:
                raise
            return str(found.experiment_id)

    def _record(self, payload: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        client, run_id = self.client, self.run_id
        metrics = [Metric(k, v, ts, step) for k, v, ts, step in payload.get("metrics", [])]
        params = [Param(k, v) for k, v in payload.get("params", {}).items()]
        tags = [RunTag(k, v) for k, v in payload.get("tags", {}).items()]
        for chunk in _chunks(metrics, BATCH_METRICS):
            self._retry(partial(client.log_batch, run_id, metrics=chunk))
        for chunk in _chunks(params, BATCH_PARAMS):
            self._retry(partial(client.log_batch, run_id, params=chunk))
        for chunk in _chunks(tags, BATCH_TAGS):
            self._retry(partial(client.log_batch, run_id, tags=chunk))
        if payload.get("name"):
            self._retry(lambda: client.update_run(run_id, name=payload["name"]))
        if payload.get("artifact_dir"):
            self._retry(lambda: self._log_artifacts(Path(payload["artifact_dir"])))
        self._log_model_once()
        if self.model_error:
            raise RuntimeError(f"the MLflow model: {self.model_error}")
        # The test metrics belong to the run and to the model they measure (its Models page).
        final = [
            Metric(k, v, ts, step, model_id=self.model_id)
            for k, v, ts, step in payload.get("final", [])
        ]
        self._retry(partial(client.log_batch, run_id, metrics=final))
        end = payload.get("end_ms")
        self._retry(lambda: client.set_terminated(run_id, "FINISHED", end_time=end))

    def _log_model_once(self) -> None:
        """Log ``self.model`` unless it is logged already (or there is none)."""
        if self.model is None or self.model_id is not None or self.model_error:
            return
        try:
            self._retry(self._log_model)
        except Exception as e:
            self.model_error = describe(e)

    def _log_model(self) -> None:
        import mlflow

        from canonml.track.model import log_package_model

        assert self.model is not None and self.run_id is not None
        mlflow.set_tracking_uri(self.uri)
        # MLflow files a new model under the active experiment (else "Default"): the run's.
        mlflow.set_experiment(experiment_id=self.experiment_id)
        model = self.model
        self.model_id = log_package_model(
            Path(model["package_dir"]), self.run_id, model.get("example"), model.get("register")
        )

    def _log_artifacts(self, root: Path) -> None:
        """Everything in the run directory but checkpoints and half-written temp files."""
        for entry in sorted(root.iterdir()):
            if entry.name in SKIP or entry.name.startswith("."):
                continue
            if entry.is_dir():
                self.client.log_artifacts(self.run_id, str(entry), artifact_path=entry.name)
            elif entry.is_file():
                self.client.log_artifact(self.run_id, str(entry))

    def _terminate(self, status: str, end_ms: int | None) -> None:
        if self.run_id is None:
            return
        try:
            self.client.set_terminated(self.run_id, status, end_time=end_ms)
        except Exception:
            pass  # best effort: the run directory is the record that counts

    def _retry(self, fn: Callable[[], T]) -> T:
        return retry(fn, self.attempts, self.backoff)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return None


def _git_commit() -> tuple[str, str | None]:
    """The commit of the working directory's git repository, if it is one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "", None
    commit = done.stdout.strip()
    return ("mlflow.source.git.commit", commit) if done.returncode == 0 and commit else ("", None)


def _protocol_channel() -> TextIO:
    # Only our JSON lines may reach the parent on stdout: keep a private copy of stdout
    # and point file descriptor 1 (and with it ``print``) at stderr.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return channel


def _send(channel: TextIO, message: dict[str, Any]) -> None:
    try:
        channel.write(json.dumps(message) + "\n")
        channel.flush()
    except OSError:
        pass  # the parent stopped listening (it gave up or was killed)


def main() -> int:
    channel = _protocol_channel()
    # The run is the work that counts: where the two compete for a core, it goes first (the
    # worker's own work is mostly waiting, and it gets the whole machine once the run ends).
    with contextlib.suppress(OSError, AttributeError):
        os.nice(5)
    # Ctrl-C reaches the whole process group; the parent decides what happens to the run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore")  # MLflow's own deprecations are no business of a run
    quiet_logs()
    config = json.loads(sys.stdin.readline() or "{}")
    if sqlite_path(config["uri"]) is not None:
        try:
            set_busy_timeout(config.get("busy_timeout", 2.0))
            limit_engine_retries()
        except ImportError:
            pass  # MLflow is missing: the session's open() says so
    session = Session(config)
    session.open()
    _send(channel, {"event": "ready", "run_id": session.run_id, "error": session.error})
    while True:
        line = sys.stdin.readline()
        payload: dict[str, Any] = json.loads(line) if line.strip() else {"status": "KILLED"}
        if "status" in payload:
            break
        session.package_ready(payload["model"])
    _send(channel, {"event": "done", **session.close(payload)})
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is committed and reported; MLflow's exit hooks would only cost the run time.
    sys.stderr.flush()
    os._exit(code)
