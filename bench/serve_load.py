"""Loopback load on ``canon serve`` against a minimal FastAPI + ONNX Runtime endpoint.

One run trains the digits MLP and digits CNN templates briefly (their speed does not
depend on the epochs), writes their packages, and for each model starts, one at a time,
as separate 1-worker uvicorn processes:

- ``canon``: ``canon serve`` with micro-batching (the defaults: ``--max-batch 32``);
- ``canon-nobatch``: ``canon serve --max-batch 1`` (one ONNX Runtime call per request);
- ``minimal``: a hand-written FastAPI route (``request.json()``, numpy, ``session.run``,
  ``JSONResponse``) over the same ``model.onnx``, with no checks at all;
- ``minimal-orjson``: the same, hand-tuned (a plain route, orjson in and out), for context:
  the target compares with ``minimal``; ``serve_ratio_vs_minimal_orjson`` is printed too.

Load comes from Debian's ``wrk`` (C, one thread; a Lua script cycles 64 real digits
through single-sample OIP v2 infer requests) with 8 and 32 connections for ``--seconds``
each (≤ 20 s) after a 1 s warm-up. Each line prints requests/s and p50/p99 latency.
The last line is ``serve_ratio=<canon req/s ÷ minimal req/s>`` for the MLP at 32 clients.
Targets (the serving issue): serve_ratio ≥ 0.90; canon's p99 ≤ 10 ms at 8 clients and
≤ 1.2 × the minimal endpoint's at 32; for the CNN, micro-batching raises requests/s.

``--serve KIND --pkg DIR --port N`` runs one server in the foreground (what the bench
starts in its child processes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

CLIENTS = (8, 32)
SERVERS = ("canon", "canon-nobatch", "minimal", "minimal-orjson")
TEMPLATES = {"digits-mlp": "train.epochs=2", "digits-cnn": "train.epochs=1"}


def minimal_app(pkg: Path) -> Any:
    """What a person writes by hand to serve ``model.onnx`` over OIP v2: no checks."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(pkg / "model.onnx"), options)
    app = FastAPI()

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> JSONResponse:
        body = await request.json()
        tensor = body["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        probabilities, label = session.run(["probabilities", "label"], {tensor["name"]: x})
        outputs = [
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": list(probabilities.shape),
                "data": probabilities.ravel().tolist(),
            },
            {
                "name": "label",
                "datatype": "INT64",
                "shape": list(label.shape),
                "data": label.tolist(),
            },
        ]
        return JSONResponse({"model_name": name, "id": body.get("id", ""), "outputs": outputs})

    return app


def minimal_orjson_app(pkg: Path) -> Any:
    """The minimal endpoint tuned by hand: a plain route, orjson both ways. Still no checks."""
    import onnxruntime as ort
    import orjson

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(pkg / "model.onnx"), options)

    async def infer(request: Request) -> Response:
        body = orjson.loads(await request.body())
        tensor = body["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        probabilities, label = session.run(["probabilities", "label"], {tensor["name"]: x})
        outputs = [
            {"name": "probabilities", "datatype": "FP32", "shape": list(probabilities.shape),
             "data": probabilities.ravel()},
            {"name": "label", "datatype": "INT64", "shape": list(label.shape), "data": label},
        ]  # fmt: skip
        answer = {"model_name": request.path_params["name"], "outputs": outputs}
        content = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(content, media_type="application/json")

    app = FastAPI()
    app.router.add_route("/v2/models/{name}/infer", infer, ["POST"])
    return app


def serve(kind: str, pkg: Path, port: int) -> None:
    """Run one server in the foreground: 1 uvicorn worker, no access log (as canon serve)."""
    import uvicorn

    if kind.startswith("minimal"):
        app = minimal_app(pkg) if kind == "minimal" else minimal_orjson_app(pkg)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        return
    from canonml.serve import run_server

    max_batch = 1 if kind == "canon-nobatch" else 32
    run_server([pkg], host="127.0.0.1", port=port, workers=1, max_batch=max_batch)


def build_packages(root: Path) -> dict[str, Path]:
    import canonml
    from canonml.package import write_package

    packages = {}
    for template, epochs in TEMPLATES.items():
        run = canonml.run(f"template:{template}", root / "runs", overrides=[epochs, "track=false"])
        packages[template] = write_package(run.run_dir, root / template)
    return packages


def lua_script(path: Path, model: str, x: np.ndarray) -> None:
    """A wrk script that cycles through one single-sample request per row of ``x``."""
    bodies = [
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, *row.shape],
                        "datatype": "FP32",
                        "data": row.ravel().tolist(),
                    }
                ]
            }
        )
        for row in x
    ]
    lines = ",\n".join(f"[==[{b}]==]" for b in bodies)
    path.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{lines}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i % #bodies + 1\n"
        f'  return wrk.format(nil, "/v2/models/{model}/infer", nil, bodies[i])\nend\n',
        encoding="utf-8",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str, pkg: Path, script: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", kind, "--pkg", str(pkg), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{kind} server exited with {proc.returncode}")
        if wrk(url, script, 1, 1)[0] > 0:
            return proc, url
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"{kind} server did not answer within 60 s")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, script: Path, clients: int, seconds: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of one wrk run; any non-2xx answer ends the bench."""
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        if seconds > 1:
            sys.exit(f"wrk saw errors:\n{out}")
        return 0.0, 0.0, 0.0
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    pct = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    if rate is None or len(pct) < 2:
        return 0.0, 0.0, 0.0

    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        return float(value) * _UNITS[unit]

    return float(rate.group(1)), ms(pct["50"]), ms(pct["99"])


def measure(packages: dict[str, Path], root: Path, seconds: int) -> dict[tuple[str, ...], Any]:
    from sklearn.datasets import load_digits

    x = load_digits().data[:64].reshape(-1, 1, 8, 8).astype(np.float32)
    results: dict[tuple[str, ...], Any] = {}
    for model, pkg in packages.items():
        script = root / f"{model}.lua"
        lua_script(script, model, x)
        for kind in SERVERS:
            proc, url = start(kind, pkg, script)
            try:
                for clients in CLIENTS:
                    wrk(url, script, clients, 1)  # warm-up
                    rate, p50, p99 = results[model, kind, str(clients)] = wrk(
                        url, script, clients, seconds
                    )
                    print(
                        f"model={model} server={kind} clients={clients} "
                        f"req/s={rate:.0f} p50={p50:.2f}ms p99={p99:.2f}ms",
                        flush=True,
                    )
            finally:
                proc.terminate()
                proc.wait(10)
    return results


def verdict(r: dict[tuple[str, ...], Any]) -> None:
    mlp_ratio = r["digits-mlp", "canon", "32"][0] / r["digits-mlp", "minimal", "32"][0]
    checks = {"serve_ratio >= 0.90 (MLP, 32 clients)": mlp_ratio >= 0.90}
    for model in TEMPLATES:
        checks[f"{model}: canon p99 <= 10 ms at 8 clients"] = r[model, "canon", "8"][2] <= 10
        checks[f"{model}: canon p99 <= 1.2 x minimal p99 at 32 clients"] = (
            r[model, "canon", "32"][2] <= 1.2 * r[model, "minimal", "32"][2]
        )
    cnn = r["digits-cnn", "canon", "32"][0] / r["digits-cnn", "canon-nobatch", "32"][0]
    checks[f"digits-cnn: micro-batching raises req/s at 32 clients (x{cnn:.2f})"] = cnn > 1
    mlp = {kind: r["digits-mlp", kind, "32"][0] for kind in SERVERS}
    print(f"serve_ratio_nobatch={mlp['canon-nobatch'] / mlp['minimal']:.3f}")
    print(f"serve_ratio_vs_minimal_orjson={mlp['canon'] / mlp['minimal-orjson']:.3f}")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")
    print(f"serve_ratio={mlp_ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="load per case, ≤ 20 (default 5)")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--pkg", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.pkg, args.port)
        return
    if shutil.which("wrk") is None:
        sys.exit("this bench needs Debian's wrk: apt-get install wrk")
    seconds = min(max(args.seconds, 1), 20)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="canon-serve-bench-") as tmp:
        root = Path(tmp)
        packages = build_packages(root)
        fast = all(importlib.util.find_spec(m) for m in ("uvloop", "httptools"))
        stack = "uvloop+httptools" if fast else "asyncio+h11 (pip install 'uvicorn[standard]')"
        print(f"cores={os.cpu_count()} seconds_per_case={seconds} wrk=1 thread uvicorn={stack}")
        verdict(measure(packages, root, seconds))


if __name__ == "__main__":
    main()
