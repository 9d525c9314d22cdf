"""``canon init``: a template as an editable spec, linked to the spec's JSON Schema.

The spec's first line is a yaml-language-server modeline (read by VS Code's YAML extension,
JetBrains IDEs and every editor using that server); the schema file sits beside the spec,
so completion and checking work offline and match the installed canonml.
"""

from __future__ import annotations

from pathlib import Path

from canonml.errors import CanonError
from canonml.io import atomic_write, stable_json
from canonml.spec.load import json_schema, template_text

SCHEMA_FILE = "canon.schema.json"


def modeline(schema: str) -> str:
    return f"# yaml-language-server: $schema={schema}\n"


def write_spec_file(template: str, target: Path, force: bool = False) -> tuple[Path, Path]:
    """Write ``template`` to ``target`` and the schema beside it; returns both paths.

    Raises ``CanonError`` if ``target`` exists (unless ``force``) or is a directory.
    """
    text = template_text(template)
    if target.is_dir():
        raise CanonError(f"{target}: is a directory; give a file name such as my-spec.yaml")
    if target.exists() and not force:
        raise CanonError(f"{target}: already exists (use --force to overwrite)")
    schema = target.parent / SCHEMA_FILE
    # The schema is generated and always replaced: it must match this canonml's spec.
    atomic_write(schema, stable_json(json_schema()))
    atomic_write(target, modeline(SCHEMA_FILE) + text)
    return target, schema
