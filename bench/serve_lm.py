"""Time to first token and tokens/s of ``canon serve``'s /v1/completions, 8 streams at once.

The package is ``--package PATH`` (a language model's package or its run directory) or, by
default, a ``news-gpt`` run cut to two training steps (``template:news-gpt`` with
``train.epochs=1 train.steps_per_epoch=2``, untracked; about 45 s on 2 cores): the real
template's size (4 layers, 6 heads, dim 192, context 256, about 4,400 characters in the
vocabulary) on the real corpus, since speed does not depend on how far it trained.

``canon serve PKG`` runs in its own process on 127.0.0.1 (ONNX Runtime: 1 intra-op thread).
After a warm-up request, each of ``--rounds`` rounds sends ``--clients`` (8) streaming
requests at once from one asyncio process (httpx, raw server-sent events: a light client
that leaves the cores to the server), each ``--max-tokens`` (200) at temperature 0.8 with
its own seed, and a single stream alone for comparison. It prints, per round, the time to
the first token (p50 and max over the clients, from sending the request), each client's
tokens/s after its first token (median and min), and the total tokens/s of the server.
**Target (issue 10): every client's first token within 1 s** — the last line is
``PASS``/``FAIL ttft_max=<s>`` over all rounds (exit 1 on FAIL).
Run: ``.venv/bin/python bench/serve_lm.py`` (``--package runs/news-gpt/<run>/package``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

TARGET_TTFT = 1.0  # seconds
PROMPTS = ("中国", "新华社北京", "今天", "人民", "经济", "我们", "北京", "世界")


@dataclass
class Stream:
    """One client's request: seconds to the first token and to the end, tokens received."""

    first: float
    total: float
    tokens: int

    @property
    def rate(self) -> float:
        """Tokens/s after the first token (the decode rate this client saw)."""
        return (self.tokens - 1) / max(self.total - self.first, 1e-9)


def build_package(root: Path) -> Path:
    cmd = [sys.executable, "-m", "canonml", "run", "--template", "news-gpt", "--out", str(root)]
    for setting in ("train.epochs=1", "train.steps_per_epoch=2", "track=false"):
        cmd += ["--set", setting]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=root)
    (run,) = (root / "news-gpt").iterdir()
    print(f"built news-gpt (2 training steps) in {time.perf_counter() - start:.0f} s: {run}")
    return run / "package"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(package: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "canonml", "serve", str(package), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"canon serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("canon serve did not answer within 60 s")


async def stream(client: httpx.AsyncClient, model: str, i: int, max_tokens: int) -> Stream:
    body = {
        "model": model,
        "prompt": PROMPTS[i % len(PROMPTS)],
        "max_tokens": max_tokens,
        "temperature": 0.8,
        "seed": i,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first, tokens = None, 0
    async with client.stream("POST", "/v1/completions", json=body) as r:
        if r.status_code != 200:
            sys.exit(f"/v1/completions answered {r.status_code}: {(await r.aread()).decode()}")
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if first is None and chunk["choices"] and chunk["choices"][0]["text"]:
                first = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    total = time.perf_counter() - start
    return Stream(total if first is None else first, total, tokens)


async def round_of(url: str, model: str, clients: int, max_tokens: int, seed: int) -> list[Stream]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        jobs = [stream(client, model, seed + i, max_tokens) for i in range(clients)]
        return list(await asyncio.gather(*jobs))


def report(name: str, streams: list[Stream], wall: float) -> None:
    firsts = sorted(s.first for s in streams)
    rates = [s.rate for s in streams]
    tokens = sum(s.tokens for s in streams)
    print(
        f"{name:10s} clients={len(streams)} ttft_p50={statistics.median(firsts):.3f}s "
        f"ttft_max={firsts[-1]:.3f}s tokens/s/client median={statistics.median(rates):.1f} "
        f"min={min(rates):.1f} total_tokens/s={tokens / wall:.1f} ({tokens} tokens)"
    )


def measure(url: str, model: str, args: argparse.Namespace) -> float:
    """Run the rounds; the worst time to first token over all of them."""
    asyncio.run(round_of(url, model, 1, 8, 0))  # warm-up
    worst = 0.0
    for k in range(args.rounds):
        start = time.perf_counter()
        alone = asyncio.run(round_of(url, model, 1, args.max_tokens, 100 * k))
        report(f"round{k + 1}-1", alone, time.perf_counter() - start)
        start = time.perf_counter()
        streams = asyncio.run(round_of(url, model, args.clients, args.max_tokens, 100 * k))
        report(f"round{k + 1}-{args.clients}", streams, time.perf_counter() - start)
        worst = max(worst, max(s.first for s in streams))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, help="a language model's package (default: build)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="canon-serve-lm-") as tmp:
        package = args.package or build_package(Path(tmp))
        if (package / "package").is_dir():
            package = package / "package"
        model = json.loads((package / "canon.json").read_text("utf-8"))["name"]
        proc, url = start_server(package)
        try:
            print(f"cores={os.cpu_count()} model={model} max_tokens={args.max_tokens}")
            worst = measure(url, model, args)
        finally:
            proc.terminate()
            proc.wait(20)
    verdict = "PASS" if worst <= TARGET_TTFT else "FAIL"
    print(
        f"{verdict} ttft_max={worst:.3f}s (target <= {TARGET_TTFT:.1f} s, {args.clients} clients)"
    )
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
