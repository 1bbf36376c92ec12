"""Loading one ``params.yaml`` section into its frozen model, with one-line errors."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from torchstages.errors import UserError
from torchstages.paths import PARAMS

__all__ = ["Section", "load_section", "load_yaml", "show_value"]

S = TypeVar("S", bound="Section")


class Section(BaseModel):
    """Base for params models: unknown keys are errors, values are frozen after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def load_yaml(path: str | Path = PARAMS) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (run from the project root)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    return data


def load_section(model: type[S], section: str, path: str | Path = PARAMS) -> S:
    """Validate ``section`` of the params file as ``model``; a missing section means all defaults."""
    raw = load_yaml(path).get(section)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: {section}: expected a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: " + _describe(exc, model, section)) from None


def _describe(exc: ValidationError, model: type[BaseModel], section: str) -> str:
    messages = []
    # a union (train.model) left with keys that other members read: its name, what it holds
    left_over: dict[str, tuple[str, list[type[BaseModel]], list[str]]] = {}
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        where = ".".join((section, *_without_tags(model, loc)))
        if err["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1])
            did_you_mean = _did_you_mean(loc[-1], known)
            messages.append(f"{where}: unknown key ({did_you_mean}allowed: {', '.join(known)})")
            siblings = _members_at(model, loc[:-2])
            if len(siblings) > 1 and not did_you_mean:
                union = where.rsplit(".", 1)[0]
                left_over.setdefault(union, (loc[-2], siblings, []))[2].append(loc[-1])
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # a union picked by its `name` (train.model): name the choices, not pydantic's dump
            tags = [t for m in _members_at(model, loc) for t in _tags(m)]
            given = err.get("ctx", {}).get("tag")
            if given is None:
                messages.append(f"{where}.name: missing (one of: {', '.join(tags)})")
                continue
            did_you_mean = _did_you_mean(given, tags)
            messages.append(
                f"{where}.name: unknown {given!r} ({did_you_mean}allowed: {', '.join(tags)})"
            )
        else:
            msg = err["msg"].removeprefix("Value error, ")
            # a rule over several keys (a model's validator) names them itself: the whole
            # section would be noise; a mapping given where a value belongs is still shown
            rule = err["type"] == "value_error" and isinstance(err.get("input"), dict)
            got = "" if rule else f" (got {err.get('input')!r})"
            messages.append(f"{where}: {msg}{got}")
    for union, (name, members, keys) in left_over.items():
        # params.yaml's model was edited by its name only, or -S changed just the name
        owners = [_tags(m)[0] for m in members if all(k in m.model_fields for k in keys)]
        if not owners:
            continue  # not another model's keys: the unknown-key messages say it all
        whose = repr(owners[0]) if len(owners) == 1 else " or ".join(map(repr, owners))
        messages.append(
            f"{union}: keys of {whose} are left beside name {name!r}: replace the whole "
            f"section, e.g. dvc exp run -S '~{union}' -S '+{union}={{name: {name}}}'"
        )
    return "; ".join(messages)


def _did_you_mean(word: str, choices: list[str]) -> str:
    """``did you mean 'x'? `` for the closest choice, case aside (``LR``, ``GRU``); else ''."""
    lowered = {c.lower(): c for c in choices}
    hint = difflib.get_close_matches(word.lower(), list(lowered), n=1)
    return f"did you mean '{lowered[hint[0]]}'? " if hint else ""


def _fields_at(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """Field names of the nested model that ``loc`` points to (a union member is picked by its tag)."""
    current = _members_at(model, loc)
    return sorted(current[0].model_fields) if current else []


def _without_tags(model: type[BaseModel], loc: tuple[str, ...]) -> tuple[str, ...]:
    """``loc`` as the user wrote it: pydantic puts a union member's tag in the path
    (``model.cnn.dropout``), params.yaml has it as a value (``model: {name: cnn, dropout: …}``)."""
    kept = []
    for i, part in enumerate(loc):
        current = _members_at(model, loc[:i])
        if not (len(current) > 1 and any(part in _tags(m) for m in current)):
            kept.append(part)
    return tuple(kept)


def _members_at(model: type[BaseModel], loc: tuple[str, ...]) -> list[type[BaseModel]]:
    current: list[type[BaseModel]] = [model]
    for part in loc:
        tagged = [m for m in current if part in _tags(m)]
        if len(current) > 1 and tagged:
            current = tagged
            continue
        current = [
            found
            for m in current
            if part in m.model_fields
            for found in _models_in(m.model_fields[part].annotation)
        ]
    return current


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _tags(model: type[BaseModel]) -> tuple[str, ...]:
    """The ``name`` values that pick ``model`` in a union (``lstm`` and ``gru`` pick one)."""
    field = model.model_fields.get("name")
    return tuple(str(a) for a in typing.get_args(field.annotation)) if field else ()


def show_value(value: Any) -> str:
    """A params value as written in YAML (lowercase booleans, flow lists), for markdown tables."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    return str(value)
