"""Serving model packages over the Open Inference Protocol v2 (KServe / Triton / MLServer).

``create_app`` builds the FastAPI app from opened packages; ``run_server`` is ``canon serve``.
Nothing here imports torch: a served package needs only ONNX Runtime.
"""

from __future__ import annotations

from canonml.serve.app import create_app
from canonml.serve.protocol import ServeError
from canonml.serve.server import build_app, run_server

__all__ = ["ServeError", "build_app", "create_app", "run_server"]
