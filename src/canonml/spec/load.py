"""Reading a spec: YAML → overrides → validation, with every error as ``path: problem``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from canonml.errors import SpecError
from canonml.registry import did_you_mean, hint_and_choices
from canonml.spec.root import CrossFieldError, Spec
from canonml.spec.track import check_register_kept

TEMPLATES = resources.files("canonml.spec") / "templates"


def template_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in TEMPLATES.iterdir() if p.name.endswith(".yaml"))


def template_text(name: str) -> str:
    names = template_names()
    if name not in names:
        raise SpecError(
            "--template",
            f"unknown template '{name}'{hint_and_choices(name, names)}",
        )
    return (TEMPLATES / f"{name}.yaml").read_text(encoding="utf-8")


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML spec file into a mapping, or raise ``SpecError`` naming the file."""
    p = Path(path)
    if not p.exists() or p.is_dir():
        raise SpecError(str(p), "spec file not found (check the path, or use --template NAME)")
    return parse_spec_text(p.read_text(encoding="utf-8"), str(p))


def parse_spec_text(text: str, where: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{where}{line}", f"not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise SpecError(where, f"a spec is a YAML mapping of sections, got {type(raw).__name__}")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``raw``."""
    out: dict[str, Any] = json.loads(json.dumps(raw, default=str))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError("--set", f"expected key.path=value, got '{item}'")
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        node: Any = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                section = ".".join(parts[: i + 1])
                raise SpecError(
                    f"--set {key}",
                    f"'{section}' is {_show(nxt)}, not a section"
                    + (f" ({section} is off; remove '{section}: false')" if nxt is False else ""),
                )
            node = nxt
        node[parts[-1]] = parsed
    return out


def validate_spec(raw: dict[str, Any]) -> Spec:
    """Validate a mapping into a ``Spec`` or raise the first problem as ``SpecError``."""
    try:
        return Spec.model_validate(raw)
    except ValidationError as e:
        raise _to_spec_error(e, raw) from None


def load_spec(
    source: str | Path | dict[str, Any] | Spec, overrides: list[str] | None = None
) -> Spec:
    """Load a spec from a path, a template name (``template:NAME``), a mapping or a ``Spec``."""
    if isinstance(source, Spec):
        raw = source.model_dump(mode="json")
    elif isinstance(source, dict):
        raw = source
    elif str(source).startswith("template:"):
        name = str(source)[len("template:") :]
        raw = parse_spec_text(template_text(name), f"template {name}")
    else:
        raw = read_spec_file(source)
    merged = apply_overrides(raw, overrides or [])
    check_register_kept(raw, merged)
    return validate_spec(merged)


def spec_to_yaml(spec: Spec) -> str:
    """The resolved spec (every default filled) as YAML."""
    return yaml.safe_dump(
        spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True, default_flow_style=None
    )


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "canonml spec"
    return schema


# ---------------------------------------------------------------- error formatting


def _to_spec_error(e: ValidationError, raw: dict[str, Any]) -> SpecError:
    err = e.errors(include_url=False)[0]
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    loc = _strip_tags(err["loc"])
    path = _path(loc)
    if isinstance(cause, CrossFieldError):
        return SpecError(cause.path, str(cause))
    given = _given(raw, loc)
    if given is _MISSING and isinstance(err.get("input"), int | float | str | bool):
        given = err["input"]  # a value a shorthand expanded (prune: 1.5 → [{amount: 1.5}])
    problem = _problem(err, loc, raw)
    if err["type"] == "union_tag_invalid":
        path = f"{path}.arch" if path else "arch"
    elif (
        err["type"] not in ("missing", "extra_forbidden")
        and given is not _MISSING
        and not isinstance(given, dict)
        and "got " not in problem
        and not (isinstance(given, str) and _show(given) in problem)
    ):
        problem += f", got {_show(given)}"
    return SpecError(path or "spec", problem)


def _union_tags(annotation: Any, field: str) -> frozenset[str]:
    """The discriminator values (``arch``, ``name``) of a union of spec sections."""
    import typing

    union = typing.get_args(annotation)[0] if _annotated(annotation) else annotation
    tags = set()
    for member in typing.get_args(union):
        default = getattr(member, "model_fields", {}).get(field)
        if default is not None and isinstance(default.default, str):
            tags.add(default.default)
    return frozenset(tags)


def _annotated(annotation: Any) -> bool:
    import typing

    return typing.get_origin(annotation) is typing.Annotated


# Union tags pydantic inserts into error locations, per section: read from the unions, so a
# new architecture or task needs no change here.
_TAGS = {
    "model": _union_tags(Spec.model_fields["model"].annotation, "arch"),
    "task": _union_tags(Spec.model_fields["task"].annotation, "name"),
}


def _strip_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the discriminator tags pydantic inserts (``model.mlp.hidden`` → ``model.hidden``)."""
    out: list[int | str] = []
    for part in loc:
        if len(out) == 1 and part in _TAGS.get(str(out[0]), ()):
            continue
        if isinstance(part, str) and (part.startswith("function-") or part in ("int", "str")):
            continue
        if part == "literal['auto']" or part == "constrained-int":
            continue
        out.append(part)
    return tuple(out)


def _path(loc: tuple[int | str, ...]) -> str:
    s = ""
    for part in loc:
        s += f"[{part}]" if isinstance(part, int) else (f".{part}" if s else str(part))
    return s


_MISSING = object()


def _given(raw: Any, loc: tuple[int | str, ...]) -> Any:
    node = raw
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return node


def _show(v: Any) -> str:
    return repr(v) if isinstance(v, str) else json.dumps(v, default=str)


_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _problem(err: Any, loc: tuple[int | str, ...], raw: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _BOUNDS:
        key = {
            "greater_than": "gt",
            "greater_than_equal": "ge",
            "less_than": "lt",
            "less_than_equal": "le",
        }[kind]
        return f"must be {_BOUNDS[kind]} {ctx[key]}"
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return _unknown_key(loc, raw)
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "union_tag_invalid":
        tags = sorted(t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(","))
        tag = str(ctx.get("tag"))
        return f"unknown model '{tag}'{hint_and_choices(tag, tags)}"
    if kind == "string_pattern_mismatch":
        return "must use lower-case letters, digits and '-' only"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _unknown_key(loc: tuple[int | str, ...], raw: Any) -> str:
    key = str(loc[-1])
    fields = _fields_at(loc[:-1], raw)
    if not fields:
        return f"unknown key '{key}'"
    hint = did_you_mean(key, fields)
    return f"unknown key '{key}'{hint or hint_and_choices(key, fields)}"


def _fields_at(loc: tuple[int | str, ...], raw: Any) -> list[str]:
    """Field names of the spec section at ``loc`` (for did-you-mean on a typo'd key)."""
    model: Any = Spec
    node = raw
    for part in loc:
        if isinstance(part, int) or model is None:
            return []
        field = model.model_fields.get(part)
        if field is None:
            return []
        node = node.get(part) if isinstance(node, dict) else None
        model = _section_type(field.annotation, node)
    return sorted(model.model_fields) if model is not None else []


def _section_type(annotation: Any, node: Any) -> type[BaseModel] | None:
    """The section model of a field; for a union on ``arch``, the member ``node`` names."""
    import typing

    members: list[type[BaseModel]] = []
    for c in [annotation, *typing.get_args(annotation)]:
        for t in [c, *typing.get_args(c)]:
            if isinstance(t, type) and issubclass(t, BaseModel) and t not in members:
                members.append(t)
    arch = node.get("arch") if isinstance(node, dict) else None
    for t in members:
        if (
            arch is not None
            and t.model_fields.get("arch")
            and t.model_fields["arch"].default == arch
        ):
            return t
    return members[0] if members else None
