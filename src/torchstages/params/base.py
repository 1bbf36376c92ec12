"""Loading one ``params.yaml`` section into its frozen model, with one-line errors."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Hashable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from torchstages.errors import UserError
from torchstages.paths import PARAMS

__all__ = ["AS_WRITTEN", "Section", "load_section", "load_yaml", "show_value"]

S = TypeVar("S", bound="Section")

# validation context key, true while a section is validated as its file writes it: a rule over
# values that code may replace later (a table's default epochs shrink with its rows, and the
# result is validated again) holds only for what the user wrote
AS_WRITTEN = "as_written"


class Section(BaseModel):
    """Base for params models: unknown keys are errors, values are frozen after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, data: Any) -> Any:
        # pydantic's lax mode reads true as 1 for an int or float (epochs: true trains one epoch);
        # strict mode would also refuse what lax mode rightly reads (a Path from a string, "3").
        # A model validator, as a field one may not run before a union's `name`
        if not isinstance(data, dict):
            return data
        errors = []
        for key, value in data.items():
            field = cls.model_fields.get(key)
            leaves = _leaves(field.annotation) if field else set()
            if (int in leaves or float in leaves) and bool not in leaves and _holds_bool(value):
                expected = {"expected": _words(field.annotation)}
                error = PydanticCustomError(
                    "bool", "Input should be {expected}, not a boolean", expected
                )
                errors.append(InitErrorDetails(type=error, loc=(key,), input=value))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


def load_yaml(path: str | Path = PARAMS) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (run from the project root)") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # safe_load's loader, extended
    except _DuplicateKey as exc:
        raise UserError(f"{path}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {_where(exc)}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    return data


def _where(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem and where it is, on one line (its own message spans several)."""
    mark = exc.problem_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    context = exc.context_mark
    opened = f" ({exc.context} at line {context.line + 1})" if exc.context and context else ""
    return f"{where}{exc.problem}{opened}"


class _DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping; says which (its path) and on which lines."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load's, but a key given twice in one mapping is an error: YAML forbids it, and PyYAML
    would keep the last silently (epochs: 30, then epochs: 3 further down, trains 3)."""

    def construct_document(self, node: yaml.Node) -> Any:
        self._refuse_duplicates(node, (), set())
        return super().construct_document(node)

    def _refuse_duplicates(self, node: yaml.Node, path: tuple[str, ...], seen: set[int]) -> None:
        if id(node) in seen:  # an alias of a node already checked (or of its own parent)
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._refuse_duplicates(item, (*path, str(i)), seen)
        if not isinstance(node, yaml.MappingNode):
            return
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            # a merge (<<: *defaults) is overridden by the keys beside it, as YAML means it
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, Hashable) and key in lines:
                where = f"line {line}" if lines[key] == line else f"lines {lines[key]} and {line}"
                raise _DuplicateKey(
                    f"{'.'.join((*path, str(key)))}: given twice, on {where} (delete one; YAML "
                    "readers would keep the last silently)"
                )
            if isinstance(key, Hashable):  # else PyYAML refuses the key itself
                lines[key] = line
            self._refuse_duplicates(value_node, (*path, str(key)), seen)


def load_section(model: type[S], section: str, path: str | Path = PARAMS) -> S:
    """Validate ``section`` of the params file as ``model``; an empty section means all defaults.

    A missing one is an error: a stage run by itself (``python stages/test.py``, as on each node
    of a multi-node run) would otherwise train or score at defaults the file never asked for when
    its section is misspelt (``Test:``), which ``dvc repro`` alone would catch."""
    data = load_yaml(path)
    if section not in data:
        sections = [str(k) for k in data]
        did_you_mean = _did_you_mean(section, sections)
        found = f"sections: {', '.join(sections)}" if sections else "the file has no sections"
        raise UserError(f"{path}: {section}: section missing ({did_you_mean}{found})")
    raw = data[section]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: {section}: expected a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw, context={AS_WRITTEN: True})
    except ValidationError as exc:
        raise UserError(f"{path}: " + _describe(exc, model, section, raw)) from None


def _describe(
    exc: ValidationError, model: type[BaseModel], section: str, raw: dict[str, Any]
) -> str:
    messages = []
    # a union (train.model) left with keys that other members read: its name, what it holds
    left_over: dict[str, tuple[str, list[type[BaseModel]], list[str]]] = {}
    errors = _merge_plain_unions(exc.errors(), model, raw)
    for err in errors:
        loc = tuple(str(p) for p in err["loc"])
        if err["type"] == "too_short" and _has_failed_items(err["loc"], errors):
            continue  # too short only because bad items were left out: their errors say why
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
            msg = _plain_message(err, model, loc)
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


def _plain_message(err: Any, model: type[BaseModel], loc: tuple[str, ...]) -> str:
    """pydantic's message, but in params.yaml's words where pydantic speaks of Python types
    ("a valid tuple", "instance of TableSplitParams")."""
    if err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        members = _members_at(model, loc)
        # a union picked by its name (train.model): `model: mlp` is the likely slip
        tags = [t for m in members for t in _tags(m)] if len(members) > 1 else []
        name = err["input"] if err["input"] in tags else tags[0] if tags else None
        example = f", e.g. {{name: {name}}}" if name else ""
        return f"Input should be a mapping of keys{example}"
    annotation = _annotation_at(model, loc)
    if err["type"] in ("tuple_type", "list_type") and annotation is not None:
        return f"Input should be {_words(annotation)}"
    return str(err["msg"]).removeprefix("Value error, ")


def _annotation_at(model: type[BaseModel], loc: tuple[str, ...]) -> Any:
    """The annotation of the field ``loc`` names, or None where it names no field (a list item)."""
    owners = _members_at(model, loc[:-1]) if loc else []
    field = owners[0].model_fields.get(loc[-1]) if owners else None
    return field.annotation if field is not None else None


def _has_failed_items(loc: tuple[Any, ...], errors: list[Any]) -> bool:
    return any(len(e["loc"]) > len(loc) and tuple(e["loc"][: len(loc)]) == loc for e in errors)


def _merge_plain_unions(
    errors: list[Any], model: type[BaseModel], raw: dict[str, Any]
) -> list[Any]:
    """``errors`` with the one error per member of each plain union (``image_size.int: ...;
    image_size.tuple[int, int].1: Field required``) made one: the errors of the member the value
    is of the kind of (``max_len: 0``: too small an int), else that the value should be one of
    the members (``image_size: [16]``)."""
    # each error at its place (its index); each union's, by member, at the place of its first
    places: dict[Any, Any] = {}
    for n, err in enumerate(errors):
        loc = tuple(str(p) for p in err["loc"])
        i = _union_member_at(model, loc)
        if i is None:
            places[n] = err
        else:
            without_member = {**err, "loc": loc[:i] + loc[i + 1 :]}
            places.setdefault(loc[:i], {}).setdefault(loc[i], []).append(without_member)
    merged = []
    for place, held in places.items():
        if isinstance(place, int):
            merged.append(held)
            continue
        of_its_kind = [errs for errs in held.values() if not any(map(_mismatch, errs))]
        if of_its_kind:
            merged += of_its_kind[0]
            continue
        value: Any = raw
        for part in _without_tags(model, place):
            value = value[part]
        annotation = _members_at(model, place[:-1])[0].model_fields[place[-1]].annotation
        message = f"Input should be {_words(annotation)}"
        merged.append({"type": "union", "loc": place, "msg": message, "input": value})
    return merged


def _mismatch(err: Any) -> bool:
    """Whether pydantic's ``err`` says a value is not of a type's kind at all (a list for an int,
    a string that is no number, a list of the wrong length), not that it is out of its range."""
    kind = err["type"]
    return kind.endswith(("_type", "_parsing")) or kind in (
        "literal_error",
        "missing",
        "too_long",
        "too_short",
    )


def _union_member_at(model: type[BaseModel], loc: tuple[str, ...]) -> int | None:
    """The index of the part of ``loc`` that names a plain union's member (pydantic puts it in the
    path: ``image_size.tuple[int, int].1``), or None."""
    for i in range(1, len(loc)):
        for owner in _members_at(model, loc[: i - 1]):
            field = owner.model_fields.get(loc[i - 1])
            if field is not None and _is_plain_union(field.annotation):
                return i
    return None


def _is_plain_union(annotation: Any) -> bool:
    """A union of values (``Literal["auto"] | int``), not of models picked by name nor ``X | None``
    (whose errors pydantic does not split by member)."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return False
    values = [a for a in typing.get_args(annotation) if a is not type(None)]
    return len(values) > 1 and not _models_in(annotation)


def _leaves(annotation: Any) -> set[Any]:
    """The scalar types a value of ``annotation`` may hold: ``list[int] | None`` -> int, None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return {type(v) for v in typing.get_args(annotation)}
    if origin is typing.Annotated:
        return _leaves(typing.get_args(annotation)[0])
    if origin is None:
        return {annotation}
    return {leaf for arg in typing.get_args(annotation) if arg is not ... for leaf in _leaves(arg)}


def _holds_bool(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return any(_holds_bool(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_bool(v) for v in value.values())
    return isinstance(value, bool)


_NOUNS = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
}


def _words(annotation: Any, plural: bool = False) -> str:
    """``annotation`` as the object of a sentence: ``int | tuple[int, int]`` -> 'an integer or a
    list of 2 integers'."""
    choices = _choices(annotation, plural)
    return choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]


def _choices(annotation: Any, plural: bool) -> list[str]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return [c for arg in args for c in _choices(arg, plural)]
    if origin is typing.Literal:
        return [repr(a) for a in args]
    if origin is typing.Annotated:
        return _choices(args[0], plural)
    if annotation is bool:
        return ["true", "false"]
    if annotation is type(None):
        return ["null"]
    if annotation in _NOUNS:
        return [_NOUNS[annotation][plural]]
    if origin is list or origin is tuple and args[-1] is ...:
        return [f"a list of {_words(args[0], plural=True)}"]
    if origin is tuple:
        kinds = {_words(a, plural=True) for a in args}
        return [f"a list of {len(args)} {kinds.pop() if len(kinds) == 1 else 'values'}"]
    if origin is dict:
        return [f"a mapping of {_words(args[0], True)} to {_words(args[1], True)}"]
    return [getattr(annotation, "__name__", str(annotation))]


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
