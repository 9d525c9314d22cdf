"""The version of canonml: this line is its one source (pyproject.toml reads it)."""

__version__ = "0.1.0"
