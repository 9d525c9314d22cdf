"""Distributed data-parallel training: a training wrapper (DESIGN §7) around the one loop.

``canon run SPEC --nproc N`` launches N copies of ``canon run`` through
``torch.distributed.run`` (torchrun; multi-node runs call torchrun with its own flags). Each
process reads the same spec and data and builds the same model from the seed; the process
group (gloo on CPU, nccl on GPUs, one GPU per process) lives only while the model trains.
Inside it:

- batches: every process draws the same seeded permutation and the same global batches of
  ``train.batch_size`` (a single process's batches), and trains on its own slice of each —
  ``batch_size / N`` examples — so the data each update sees matches a 1-process run;
- the model is wrapped in ``DistributedDataParallel``: gradients are averaged across
  processes in backward, every process makes the same update;
- the epoch's training logs are averaged across processes (each process evaluates the whole
  validation split with the same weights, so validation logs agree without a reduction);
- only rank 0 writes: the run directory, checkpoints, history, tracking, report and package
  (the other ranks read a checkpoint to resume, and write nothing).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from canonml.errors import DistributedError, SpecError
from canonml.train.callbacks import Callback

if TYPE_CHECKING:
    from canonml.spec.root import Spec
    from canonml.train.loop import TrainState
    from canonml.train.steps import Step

# Where rank 0 tells the launcher its run directory (for the message when a rank crashes).
NOTE_ENV = "CANON_LAUNCH_NOTE"
# How long a collective waits for a silent rank before failing (torchrun ends the others
# at once when a process dies; this bounds a hang).
TIMEOUT = datetime.timedelta(minutes=10)


def world_size() -> int:
    """How many processes train together (torchrun's ``WORLD_SIZE``; 1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_distributed() -> bool:
    return world_size() > 1


def is_follower() -> bool:
    """A process of a distributed run that is not rank 0: it trains and writes nothing."""
    return is_distributed() and rank() != 0


def check_distributed(spec: Spec, batch_size: int, examples: int) -> None:
    """What ``--nproc`` needs of the spec and the data, checked before a run directory
    exists (in each process of a distributed run)."""
    if not is_distributed():
        return
    n = world_size()
    check_spec(spec, n)
    if examples < batch_size:
        raise SpecError(
            "train.batch_size",
            f"{examples} training examples are fewer than one global batch of {batch_size} "
            f"for {n} processes; use a smaller batch or fewer processes",
        )


def check_spec(spec: Spec, n: int) -> None:
    """What training in ``n`` processes needs of the spec alone (the launcher checks it
    before starting any process)."""
    task = spec.task
    if not task.distributes:
        raise SpecError(
            "--nproc",
            f"task {task.name} cannot train in several processes (its step updates parts of "
            "the model in turn); run it in one process",
        )
    dp = spec.privacy.dp
    if dp is not None and dp.is_private:
        raise SpecError(
            "privacy.dp",
            "DP-SGD samples and clips per process; it is not supported with --nproc (run it "
            "in one process)",
        )
    if spec.train.max_minutes is not None:
        raise SpecError(
            "train.max_minutes",
            "a time budget differs between processes (each keeps its own clock); with --nproc "
            "use train.epochs or train.steps_per_epoch",
        )
    if float(getattr(spec.model, "lm_loss", 0.0) or 0.0) > 0:
        raise SpecError(
            "model.lm_loss",
            "the auxiliary language-model loss bypasses DistributedDataParallel's forward; "
            "set it to 0 with --nproc",
        )
    batch_size = spec.train.batch_size
    if batch_size < 2 * n:
        raise SpecError(
            "train.batch_size",
            f"the global batch {batch_size} gives fewer than 2 examples to each of {n} "
            f"processes; use at least {2 * n}",
        )


def place(device: torch.device) -> torch.device:
    """One GPU per process: rank ``LOCAL_RANK`` of a node takes ``cuda:LOCAL_RANK``."""
    if not is_distributed() or device.type != "cuda":
        return device
    placed = torch.device("cuda", local_rank())
    torch.cuda.set_device(placed)
    return placed


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """The process group while the model trains (nothing outside torchrun)."""
    if not is_distributed():
        yield
        return
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT)
    try:
        yield
    except RuntimeError as e:
        text = str(e)
        if not (isinstance(e, dist.DistError) or "gloo" in text or "NCCL" in text):
            raise
        raise DistributedError(
            f"rank {rank()}: another process of the run stopped, so this one cannot go on "
            f"({text.splitlines()[0][:160]}); the run keeps its last checkpoint"
        ) from None
    finally:
        with contextlib.suppress(RuntimeError):
            dist.destroy_process_group()


def announce(run_dir: Path) -> None:
    """Rank 0 tells the launcher (``canon run --nproc``) where its run directory is."""
    note = os.environ.get(NOTE_ENV)
    if note and not is_follower():
        with contextlib.suppress(OSError):
            Path(note).write_text(str(run_dir), encoding="utf-8")


class DistributedTraining(Callback):
    """The training wrapper: DDP around ``step.model`` while ``fit`` runs, each process's
    slice of every global batch, per-process dropout streams, averaged training logs.

    It must be the first callback, so schedules, early stopping and the history see the
    averaged logs.
    """

    def __init__(
        self,
        step: Step,
        batch_size: int,
        steps_per_epoch: int | None,
        seed: int,
        device: torch.device,
    ) -> None:
        self.step, self.batch_size, self.steps_per_epoch = step, batch_size, steps_per_epoch
        self.seed, self.device = seed, device
        self.rank, self.world = rank(), world_size()
        self.module: torch.nn.Module | None = None

    def sampler(self, n: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """This process's share of each global batch (the same permutation everywhere). A
        batch is cut to a multiple of the process count, so every process takes the same
        number of examples (the few left out are seen in other epochs)."""
        from canonml.train.loop import batch_slices

        for idx in batch_slices(n, self.batch_size, self.steps_per_epoch, generator):
            usable = len(idx) - len(idx) % self.world
            if usable < self.world:
                continue
            yield idx[:usable].view(self.world, -1)[self.rank]

    def on_train_begin(self, state: TrainState) -> None:
        from torch.nn.parallel import DistributedDataParallel

        self.module = self.step.model
        ids = [self.device.index] if self.device.type == "cuda" else None
        # Wrapping broadcasts rank 0's parameters and buffers: every process starts equal.
        self.step.model = DistributedDataParallel(self.module, device_ids=ids)

    def on_epoch_begin(self, state: TrainState) -> None:
        # Each process its own dropout masks, reproducible per epoch (resume is exact).
        torch.manual_seed(((self.seed * 1_000_003 + state.epoch) * 1024 + self.rank) % 2**63)

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        import torch.distributed as dist

        keys = sorted(k for k in logs if k.startswith("train_"))
        values = torch.tensor([float(logs[k]) for k in keys], dtype=torch.float64)
        longest = torch.tensor([float(logs.get("seconds", 0.0))], dtype=torch.float64)
        if self.device.type == "cuda":
            values, longest = values.to(self.device), longest.to(self.device)
        dist.all_reduce(values)
        dist.all_reduce(longest, op=dist.ReduceOp.MAX)
        for k, v in zip(keys, (values / self.world).tolist(), strict=True):
            logs[k] = v
        if "seconds" in logs:
            logs["seconds"] = float(longest)

    def on_train_end(self, state: TrainState) -> None:
        if self.module is not None:
            self.step.model = self.module


def launch(nproc: int, args: list[str]) -> int:
    """``canon ARGS`` in ``nproc`` processes on this machine through torchrun; the exit code.

    A rank that dies ends the whole run (torchrun stops the others); the message names the
    rank and how to continue. Rank 0's output is shown; the others' is not (it repeats).
    """
    if nproc < 1:
        raise SpecError("--nproc", f"must be at least 1, got {nproc}")
    if is_distributed():
        raise SpecError("--nproc", "this process is already one of a distributed run")
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    # torchrun would otherwise set it with a warning; one thread per process (train.threads
    # 'auto' keeps it so).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="canon-launch-") as tmp:
        note = Path(tmp) / "run_dir"
        os.environ[NOTE_ENV] = str(note)
        argv = [
            "--standalone",
            f"--nproc-per-node={nproc}",
            "--local-ranks-filter=0",
            "--monitor-interval=0.5",
            "-m",
            "canonml",
            *args,
        ]
        try:
            torchrun(argv)
        except ChildFailedError as e:
            run_dir = note.read_text(encoding="utf-8") if note.is_file() else None
            return _failed(e, nproc, run_dir)
        finally:
            os.environ.pop(NOTE_ENV, None)
    return 0


def _failed(e: Any, nproc: int, run_dir: str | None) -> int:
    """One line for the rank that failed first; the exit code the run ends with."""
    codes = {r: f.exitcode for r, f in e.failures.items()}
    if codes.get(0) == 2:
        return 2  # bad input: rank 0 has printed the error
    bad = sorted(r for r, c in codes.items() if c == 2)
    if bad:  # a rank found bad input (its output is not shown) and the others were stopped
        print(
            f"error: rank {bad[0]} stopped on bad input (exit 2) before rank 0 reported it; "
            "the same command without --nproc prints the reason",
            file=sys.stderr,
        )
        return 2
    if all(c == 130 or c == -signal.SIGINT for c in codes.values()):
        return 130
    # The culprit: a rank killed from outside, else one that did not just lose the others
    # (those exit 1 after a DistributedError, or are stopped by torchrun with SIGTERM).
    stopped = (1, -signal.SIGTERM)
    killed = [r for r, c in codes.items() if c < 0 and c != -signal.SIGTERM]
    failed = [r for r, c in codes.items() if c not in stopped]
    first_rank = min(killed or failed or codes, key=lambda r: e.failures[r].timestamp)
    first = e.failures[first_rank]
    code = first.exitcode
    how = (
        f"was killed by {signal.Signals(-code).name}"
        if code < 0 and -code in {s.value for s in signal.Signals}
        else f"exited with code {code}"
    )
    cont = (
        f"; continue it with: canon run --resume {run_dir} --nproc {nproc}"
        if run_dir and (Path(run_dir) / "checkpoints" / "last.pt").is_file()
        else ""
    )
    others = sorted(r for r in codes if r != first_rank)
    also = f" (rank{'s' if len(others) > 1 else ''} {', '.join(map(str, others))} with it)"
    print(
        f"error: rank {first_rank} (pid {first.pid}) {how}; the run stopped"
        + (also if others else "")
        + cont,
        file=sys.stderr,
    )
    return 1
