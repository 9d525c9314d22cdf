"""Data sources, one module per ``data.source`` scheme, in the ``SOURCES`` registry.

A source is ``load(arg, spec) -> Dataset`` where ``arg`` is what follows ``scheme:``.
"""

from __future__ import annotations

from collections.abc import Callable

from canonml.data.dataset import Dataset
from canonml.registry import Registry
from canonml.spec.data import DataSpec

Source = Callable[[str, DataSpec], Dataset]
SOURCES: Registry[Source] = Registry("data source", "data.source")


def load_source(spec: DataSpec) -> Dataset:
    """Load the data named by ``spec.source`` (``scheme:arg``); a text source's texts with
    ``data.anonymize.mask`` applied (a csv source anonymizes its own cells, before typing)."""
    scheme, _, arg = spec.source.partition(":")
    data = SOURCES.get(scheme)(arg, spec)
    if spec.anonymize is not None and data.kind == "text":
        from canonml.data.anonymize import mask_texts

        data.x, data.info["anonymize"] = mask_texts(data.x, data.feature_names, spec.anonymize)
    return data


# Import for registration (each module registers its scheme).
from canonml.data.sources import cifar, csv, idx, images, sklearn, text  # noqa: E402,F401
