"""The model package: manifest, ONNX export, model card, verify, open and predict.

Importing this package (or ``canonml.package.reader``) never imports torch: only writing
and verifying a package rebuild the PyTorch model, and they import torch when called.
"""

from canonml.package.predict import predict_inputs
from canonml.package.reader import Package, PackageError, open_package
from canonml.package.verify import verify_package
from canonml.package.writer import write_package

__all__ = [
    "Package",
    "PackageError",
    "open_package",
    "predict_inputs",
    "verify_package",
    "write_package",
]
