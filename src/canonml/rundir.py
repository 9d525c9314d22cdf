"""The run directory: ``runs/<name>/<run-id>/`` and what a resume needs from it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from canonml.errors import CheckpointError


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def spec(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def data(self) -> Path:
        return self.path / "data.json"

    @property
    def preprocess(self) -> Path:
        return self.path / "preprocess.json"

    @property
    def weights(self) -> Path:
        """The final model weights (after early stopping restored the best)."""
        return self.path / "model.safetensors"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def run_id(self) -> str:
        return self.path.name


def new_run_dir(root: str | os.PathLike[str], name: str) -> RunDir:
    """Create ``root/name/<YYYYmmdd-HHMMSS-xxxx>/`` (the suffix keeps parallel runs apart)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    while True:
        path = Path(root) / name / f"{stamp}-{os.urandom(2).hex()}"
        try:
            (path / "checkpoints").mkdir(parents=True)
            return RunDir(path)
        except FileExistsError:
            continue


def existing_run_dir(path: str | os.PathLike[str]) -> RunDir:
    """A run directory to resume; it must hold the ``spec.yaml`` its run wrote."""
    run = RunDir(Path(path))
    if not run.spec.is_file():
        raise CheckpointError(
            f"{path}: not a run directory (no spec.yaml); pass the directory "
            "'canon run' printed, e.g. runs/NAME/RUN-ID"
        )
    run.checkpoints.mkdir(exist_ok=True)
    return run
