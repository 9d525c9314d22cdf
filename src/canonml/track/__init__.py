"""Tracking: every run recorded in MLflow (``track:``), and read back by ``canon runs``.

The pipeline calls ``make_tracker(spec.track)``, then ``start`` as early as it can (the worker
imports MLflow and opens the store while the run trains), ``finish(run_record(...))`` at the
end (a warning line or None), and ``abort()`` if the run fails.
"""

from __future__ import annotations

from canonml.track.record import RunRecord, run_record
from canonml.track.runs import compare_runs, find_runs, get_runs, list_runs
from canonml.track.tracker import MlflowTracker, NullTracker, Tracker, make_tracker

__all__ = [
    "MlflowTracker",
    "NullTracker",
    "RunRecord",
    "Tracker",
    "compare_runs",
    "find_runs",
    "get_runs",
    "list_runs",
    "make_tracker",
    "run_record",
]
