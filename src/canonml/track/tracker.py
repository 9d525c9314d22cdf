"""Trackers: ``MlflowTracker`` records a run through a worker process; ``NullTracker`` does not.

``start`` launches ``python -m canonml.track.worker``, which imports MLflow and opens the
store while the run trains (both take seconds); ``finish`` hands it the finished run and
waits. Every failure becomes one warning line: tracking never costs a run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from canonml.spec.track import TrackSpec
from canonml.track.record import RunRecord, final_metrics, history_metrics
from canonml.track.store import describe, resolve_uri

MISSING = (
    "tracking: the run was not recorded in {uri}: MLflow is not installed; "
    "pip install 'canonml[track]' (or set track: false); the run directory is complete"
)
FAILED = "tracking: could not record the run in {uri} ({reason}); the run directory is complete"


class Tracker(Protocol):
    run_id: str | None  # MLflow's id of the recorded run, once ``finish`` succeeded
    model_id: str | None  # MLflow's id of the logged model, likewise
    uri: str  # the store the run goes to (resolved: spec, else $MLFLOW_TRACKING_URI, ...)
    experiment: str

    def start(self, name: str) -> None:
        """Begin recording a run called ``name`` (returns at once)."""

    def package_ready(self, model: dict[str, Any]) -> None:
        """The package exists: log it as the run's model now (returns at once)."""

    def finish(self, record: RunRecord) -> str | None:
        """Record the finished run; returns a one-line warning if that failed, else None."""

    def abort(self, status: str = "FAILED") -> None:
        """The run failed (``FAILED``) or was interrupted (``KILLED``): stop quickly."""


class NullTracker:
    """``track: false``: records nothing."""

    run_id: str | None = None
    model_id: str | None = None
    uri = ""
    experiment = ""

    def start(self, name: str) -> None:
        pass

    def package_ready(self, model: dict[str, Any]) -> None:
        pass

    def finish(self, record: RunRecord) -> str | None:
        return None

    def abort(self, status: str = "FAILED") -> None:
        pass


def make_tracker(spec: TrackSpec | Literal[False], cwd: Path | None = None) -> Tracker:
    """The tracker ``track:`` asks for; relative SQLite paths resolve against ``cwd``."""
    return NullTracker() if spec is False else MlflowTracker(spec, cwd=cwd)


class MlflowTracker:
    """Records one run in MLflow from a worker process that starts with the run.

    ``attempts``, ``backoff`` (seconds, doubled each time) and ``busy_timeout`` (how long
    one SQLite statement waits for a lock) say how hard the worker tries before giving up:
    with the defaults a locked database costs about 7 s at the start (beside training) and
    7 s more at the end, when the worker tries once more. Another run holds the lock for
    milliseconds (seconds while it creates a new store), so that is ample.
    """

    def __init__(
        self,
        spec: TrackSpec,
        *,
        cwd: Path | None = None,
        attempts: int = 3,
        backoff: float = 0.5,
        busy_timeout: float = 2.0,
        abort_grace: float = 5.0,
    ) -> None:
        self.spec = spec
        self.cwd = (cwd or Path.cwd()).resolve()
        self.uri = resolve_uri(spec.resolved_uri(), self.cwd)
        self.experiment = spec.resolved_experiment()
        self.attempts, self.backoff, self.busy_timeout = attempts, backoff, busy_timeout
        self.abort_grace = abort_grace
        self.run_id: str | None = None  # MLflow's, once finish() succeeded
        self.model_id: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ready = threading.Event()
        self._warning: str | None = None
        self._start_ms = 0

    def start(self, name: str) -> None:
        self._start_ms = _now_ms()
        if not _mlflow_installed():
            self._warning = MISSING.format(uri=self.uri)
            return
        config = {
            "uri": self.uri,
            "experiment": self.experiment,
            "name": name,
            "start_ms": self._start_ms,
            "attempts": self.attempts,
            "backoff": self.backoff,
            "busy_timeout": self.busy_timeout,
        }
        try:
            self._stderr = tempfile.TemporaryFile()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "canonml.track.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=self.cwd,
                env=worker_env(),
                text=True,
                encoding="utf-8",
            )
        except OSError as e:
            self._warning = self._failed(describe(e))
            self._close()
            return
        self._send(config)
        assert self._proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self._proc.stdout,), name="canon-track-read", daemon=True
        )
        self._reader.start()

    def wait_ready(self, timeout: float) -> bool:
        """Whether the worker has opened the store and created the run within ``timeout``."""
        return self._ready.wait(timeout)

    def package_ready(self, model: dict[str, Any]) -> None:
        if self._proc is not None:
            self._send({"model": model})

    def finish(self, record: RunRecord) -> str | None:
        if self._proc is None:
            return self._warning
        end_ms = _now_ms()
        payload = {
            "status": "FINISHED",
            "name": record.name,
            "params": record.params,
            "metrics": history_metrics(record.history, self._start_ms),
            "final": final_metrics(record.metrics, end_ms),
            "tags": record.tags,
            "artifact_dir": str(record.artifact_dir) if record.artifact_dir else None,
            "end_ms": end_ms,
        }
        self._send(payload)
        done = self._wait_done(time.monotonic() + self.spec.timeout)
        self._close(exit_wait=1.0 if done is not None else 0.0)
        if done is None:
            return self._failed(f"no answer within {self.spec.timeout:g} s")
        if done.get("error"):
            return self._failed(str(done["error"]))
        self.run_id = done.get("run_id")
        self.model_id = done.get("model_id")
        return None

    def abort(self, status: str = "FAILED") -> None:
        if self._proc is None:
            return
        # Before the run exists there is nothing to mark: stop the worker at once.
        if self._ready.is_set() and self._proc.poll() is None:
            self._send({"status": status, "end_ms": _now_ms()})
            if self._wait_done(time.monotonic() + self.abort_grace) is not None:
                self._close(exit_wait=1.0)
        self._close()

    # ------------------------------------------------------------------ the worker's pipes

    def _send(self, message: dict[str, Any]) -> None:
        """Write one line to the worker from a thread (a busy worker must not block us);
        the config line, written first, goes directly."""
        line = json.dumps(message, default=str) + "\n"
        last = message.get("status") is not None  # the payload is the last line
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        stdin = proc.stdin
        before = self._writer

        def write() -> None:
            if before is not None:
                before.join()  # lines go out in order
            try:
                stdin.write(line)
                stdin.flush()
                if last:
                    stdin.close()
            except (OSError, ValueError):
                pass  # the worker is gone; _wait_done reports why

        if "uri" in message:
            write()  # the short config line fits the pipe's buffer
            return
        self._writer = threading.Thread(target=write, name="canon-track-write", daemon=True)
        self._writer.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("event") == "ready":
                self._ready.set()
            self._messages.put(message)
        self._messages.put({"event": "eof"})

    def _wait_done(self, deadline: float) -> dict[str, Any] | None:
        """The worker's ``done`` message; an ``error`` if it died; None on timeout."""
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self._messages.get(timeout=left)
            except queue.Empty:
                break
            if message["event"] == "done":
                return message
            if message["event"] == "eof":
                return {"error": self._crash_reason()}
        return None

    def _crash_reason(self) -> str:
        assert self._proc is not None
        try:
            code: int | None = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        lines = self._stderr_text().strip().splitlines()
        return lines[-1].strip() if lines else f"the tracking worker exited with code {code}"

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-4000:].decode("utf-8", "replace")

    def _close(self, exit_wait: float = 0.0) -> None:
        """Let the worker exit (up to ``exit_wait`` s), else kill it; release pipes, threads."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(timeout=exit_wait)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for thread in (self._writer, self._reader):
                if thread is not None:
                    thread.join(timeout=5)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None and not pipe.closed:
                    with contextlib.suppress(OSError):  # unsent data to a dead worker
                        pipe.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _failed(self, reason: str) -> str:
        return FAILED.format(uri=self.uri, reason=reason)


def worker_env() -> dict[str, str]:
    """The worker's environment: this canonml importable, MLflow quiet and quick to give up."""
    import canonml

    env = dict(os.environ)
    root = str(Path(canonml.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.update(
        GIT_PYTHON_REFRESH="quiet",
        PYTHONWARNINGS="ignore",
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_CONFIGURE_LOGGING="false",  # else MLflow sets its loggers to INFO on import
    )
    # Against a server that is down MLflow would retry 7 times with growing waits (minutes).
    env.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    env.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    env.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    return env


def _mlflow_installed() -> bool:
    return importlib.util.find_spec("mlflow") is not None


def _now_ms() -> int:
    return int(time.time() * 1000)
