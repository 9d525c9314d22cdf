"""The distributed wrapper's pieces that need no second process: each rank's share of the
global batches, what ``--nproc`` refuses (naming the key), one thread per process."""

from __future__ import annotations

import pytest
import torch

from canonml.errors import SpecError
from canonml.spec import load_spec
from canonml.train.distributed import DistributedTraining, check_distributed, is_follower
from canonml.train.loop import batch_slices
from canonml.train.threads import choose_threads
from tests.conftest import tiny_spec


def as_rank(monkeypatch: pytest.MonkeyPatch, rank: int, world: int) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))


class _Step:
    model = torch.nn.Linear(2, 2)


@pytest.mark.parametrize(("n", "batch", "world"), [(100, 16, 2), (101, 16, 2), (97, 30, 3)])
def test_ranks_split_each_global_batch_into_equal_disjoint_shares(
    monkeypatch: pytest.MonkeyPatch, n: int, batch: int, world: int
) -> None:
    shares = []
    for r in range(world):
        as_rank(monkeypatch, r, world)
        wrapper = DistributedTraining(_Step(), batch, None, 0, torch.device("cpu"))  # type: ignore[arg-type]
        shares.append(list(wrapper.sampler(n, torch.Generator().manual_seed(7))))
    single = list(batch_slices(n, batch, None, torch.Generator().manual_seed(7)))
    assert len({len(s) for s in shares}) == 1  # every rank takes the same number of steps
    for i, parts in enumerate(zip(*shares, strict=True)):
        assert len({len(p) for p in parts}) == 1  # and the same number of examples
        joined = torch.cat(parts)
        # The ranks' shares are the 1-process batch (cut to a multiple of the rank count).
        usable = len(single[i]) - len(single[i]) % world
        assert joined.tolist() == single[i][:usable].tolist()


def test_is_follower_only_for_ranks_other_than_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not is_follower()
    as_rank(monkeypatch, 0, 2)
    assert not is_follower()
    as_rank(monkeypatch, 1, 2)
    assert is_follower()


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"privacy": {"dp": {"epsilon": 3.0}}}, "privacy.dp"),
        ({"train": {"epochs": 2, "batch_size": 16, "max_minutes": 1}}, "train.max_minutes"),
        ({"train": {"epochs": 2, "batch_size": 3}}, "train.batch_size"),
    ],
)
def test_what_nproc_cannot_train_is_refused_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, sections: dict[str, object], key: str
) -> None:
    spec = load_spec(tiny_spec(**sections))
    as_rank(monkeypatch, 0, 2)
    with pytest.raises(SpecError) as e:
        check_distributed(spec, spec.train.batch_size, 100)
    assert e.value.path == key


def test_a_batch_larger_than_the_data_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(tiny_spec())
    as_rank(monkeypatch, 0, 2)
    with pytest.raises(SpecError, match="fewer than one global batch"):
        check_distributed(spec, 16, 10)
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_distributed(spec, 16, 10)  # one process: nothing to check


def test_one_thread_per_process_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    model = torch.nn.Linear(4096, 4096)
    sample = (torch.zeros(1, 4096),)
    as_rank(monkeypatch, 0, 2)
    assert choose_threads("auto", model, sample, 4096) == 1
    assert choose_threads(2, model, sample, 4096) == 2  # an explicit count is kept
