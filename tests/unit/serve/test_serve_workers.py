"""``canon serve --workers 2``: ``/metrics`` counts the requests of every worker process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import stop_process
from tests.unit.serve.packages import FixturePackage

pytestmark = pytest.mark.serve

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
ROUND = 20  # requests sent at once, each on a fresh connection, until both workers answered


@pytest.fixture
def two_workers(packages: list[FixturePackage], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The URL of ``canon serve tab --workers 2``, and the temporary directory it uses."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tab = next(p for p in packages if p.name == "tab")
    command = [sys.executable, "-m", "canonml", "serve", str(tab.path), "--port", str(port)]
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where the server makes its metrics directory
    proc = subprocess.Popen([*command, "--workers", "2"], env=env, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not _live(url):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "canon serve did not come up in 30 s"
            time.sleep(0.1)
        yield url, tmp_path
    finally:
        stop_process(proc)
    assert proc.returncode == 0
    assert not list(tmp_path.glob("canon-metrics-*")), "the metrics directory outlived the server"


def _live(url: str) -> bool:
    try:
        return httpx.get(url + "/v2/health/live", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _answering(tmp_path: Path) -> set[str]:
    """The pids of the workers that counted a request (prometheus_client's per-process files)."""
    return {p.stem.removeprefix("counter_") for p in tmp_path.glob("canon-metrics-*/counter_*")}


def test_metrics_add_up_the_requests_of_both_workers(two_workers: tuple[str, Path]) -> None:
    url, tmp_path = two_workers

    def infer(_: int) -> int:
        return httpx.post(url + "/v2/models/tab/infer", json=BODY, timeout=10).status_code

    sent = 0
    with ThreadPoolExecutor(4) as pool:
        while len(_answering(tmp_path)) < 2 and sent < 20 * ROUND:
            assert list(pool.map(infer, range(ROUND))) == [200] * ROUND
            sent += ROUND
    assert len(_answering(tmp_path)) == 2, f"one worker answered all {sent} requests"
    text = httpx.get(url + "/metrics", timeout=10).text
    counts = re.findall(r"^canon_requests_total\{(.*)\} (\S+)$", text, re.MULTILINE)
    assert counts == [('model="tab",status="200"', f"{float(sent)}")]
    latency = re.search(r'^canon_request_latency_seconds_count\{model="tab"\} (\S+)$', text, re.M)
    assert latency is not None and float(latency.group(1)) == sent
    load = re.search(r'^canon_model_load_seconds\{model="tab"\} (\S+)$', text, re.MULTILINE)
    assert load is not None and 0 < float(load.group(1)) < 30
