"""``python -m canonml`` (so torchrun and plain python can launch the CLI)."""

from canonml.cli import entry

entry()
