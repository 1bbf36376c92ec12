"""Every key of every params section, given a bad value: an unknown spelling, a wrong type, an
out-of-range or unknown choice. The cases are generated from the params models (the README's
table of sections), so a new key is covered without editing this file."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import yaml
from pydantic import BaseModel

from conftest import ROOT
from torchstages.errors import UserError
from torchstages.params.base import load_section
from torchstages.params.build_dataset import BuildDatasetParams
from torchstages.params.evaluate import EvaluateParams
from torchstages.params.export import ExportParams
from torchstages.params.reference import SECTIONS
from torchstages.params.split import SplitParams
from torchstages.params.train import TrainParams

TOP = {
    "split": SplitParams,
    "build_dataset": BuildDatasetParams,
    "train": TrainParams,
    "validate": EvaluateParams,
    "test": EvaluateParams,
    "export": ExportParams,
}
WRONG_TYPE = {"not": "a value of this key"}  # a mapping: no scalar or list field takes one
# (a mapping field, e.g. train.model.embedding_dims, gets a string instead)


def _locations(prefix: str, model: type[BaseModel]) -> list[tuple[tuple[str, ...], dict]]:
    """(path of the section in params.yaml, the document around it) for one table of SECTIONS."""
    tag = model.model_fields.get("name")
    base = {"name": typing.get_args(tag.annotation)[0]} if tag and prefix == "train.model" else {}
    if prefix == "train.model.transfer":
        return [
            (("train", "model", "transfer"), {"train": {"model": {"name": "cnn", "transfer": {}}}})
        ]
    sections = prefix.split(" / ") if " / " in prefix else [prefix]
    out = []
    for section in sections:
        path = tuple(section.split("."))
        document: dict = {}
        node = document
        for part in path:
            node = node.setdefault(part, {})
        node.update(base)
        out.append((path, document))
    return out


def _bad_values(field: Any) -> list[tuple[str, Any]]:
    """A wrong type always; beyond the range or outside the choices where the field has one."""
    mapping = any(typing.get_origin(a) is dict for a in _flatten(field.annotation))
    cases = [("wrong type", "a string, not a mapping" if mapping else WRONG_TYPE)]
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            cases.append(("below range", meta.ge - 1))
        elif isinstance(meta, annotated_types.Gt):
            cases.append(("below range", meta.gt))
        elif isinstance(meta, annotated_types.Le):
            cases.append(("above range", meta.le + 1))
        elif isinstance(meta, annotated_types.Lt):
            cases.append(("above range", meta.lt))
        elif getattr(meta, "pattern", None):
            cases.append(("unknown choice", "nonsense"))
    literals = [a for a in _flatten(field.annotation) if typing.get_origin(a) is typing.Literal]
    if literals:
        cases.append(("unknown choice", "nonsense"))
    inner = [m for a in _flatten(field.annotation) for m in _constraints(a)]
    if typing.get_origin(field.annotation) is tuple and inner:
        cases.append(("item out of range", [999] * len(typing.get_args(field.annotation))))
    return cases


def _flatten(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(annotation) for a in _flatten(arg)]
    return [annotation]


def _constraints(annotation: Any) -> list[Any]:
    return [
        m
        for arg in typing.get_args(annotation)
        if typing.get_origin(arg) is typing.Annotated
        for m in typing.get_args(arg)[1:]
    ]


def _cases() -> list[Any]:
    cases = []
    for _, prefix, model in SECTIONS:
        for path, document in _locations(prefix, model):
            for key, field in model.model_fields.items():
                if _nested(field.annotation) or key == "name" and prefix == "train.model":
                    continue
                dotted = ".".join((*path, key))
                cases.append(
                    pytest.param(path, document, key + "s", "unknown", id=f"{dotted}-typo")
                )
                for kind, value in _bad_values(field):
                    cases.append(pytest.param(path, document, key, value, id=f"{dotted}-{kind}"))
    return cases


def _nested(annotation: Any) -> bool:
    return (
        any(isinstance(a, type) and issubclass(a, BaseModel) for a in _flatten(annotation))
        or typing.get_origin(annotation) is typing.Annotated
    )


def _load(tmp_path: Path, document: dict, section: str) -> str:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(document))
    with pytest.raises(UserError) as caught:
        load_section(TOP[section], section, params)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{params}: ")
    return message


@pytest.mark.parametrize(("path", "document", "key", "value"), _cases())
def test_every_key_with_a_bad_value_is_one_line_naming_file_key_and_what_is_allowed(
    tmp_path, path, document, key, value
):
    document = copy.deepcopy(document)
    node = document
    for part in path:
        node = node[part]
    node[key] = value
    message = _load(tmp_path, document, path[0])
    dotted = ".".join((*path, key))
    if value == "unknown":  # a typo of a real key
        assert f"{dotted}: unknown key (did you mean '{key[:-1]}'? allowed: " in message
    else:
        shown = f"(got {value!r})" if not isinstance(value, list) else f"(got {value[0]!r})"
        assert f"{dotted}" in message and shown in message
        assert "should" in message or "must" in message  # what is allowed


def test_the_walk_covers_every_key_of_every_section():
    ids = {p.id for p in _cases()}
    for _, prefix, model in SECTIONS:
        for key in model.model_fields:
            if key != "name" or prefix != "train.model":
                first = prefix.split(" / ")[0]
                assert f"{first}.{key}-typo" in ids or _nested(model.model_fields[key].annotation)
    assert len(ids) > 150


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"split": {"train": 0.5}}, "split: train + val + test must sum to 1, got 0.8"),
        (
            {
                "train": {
                    "epochs": 2,
                    "model": {
                        "name": "cnn",
                        "transfer": {
                            "freeze": "backbone",
                            "pretrained": "w.safetensors",
                            "unfreeze_after": 2,
                        },
                    },
                }
            },  # fmt: skip
            "train: model.transfer.unfreeze_after (2) must be below epochs (2)",
        ),
        (
            {"train": {"model": {"name": "cnn", "transfer": {"freeze": "backbone"}}}},
            "train.model.transfer: freeze: backbone needs pretrained weights (pretrained is none)",
        ),
        (
            {"train": {"model": {"name": "mlp", "transfer": {"unfreeze_after": 1}}}},
            "train.model.transfer: unfreeze_after needs freeze: backbone",
        ),
        (
            {"train": {"batch_size": 9, "nproc_per_node": 2}},
            "train: batch_size 9 must be divisible by nproc_per_node 2",
        ),
    ],
)
def test_inconsistent_combinations_say_which_keys_disagree(tmp_path, document, expected):
    assert expected in _load(tmp_path, document, next(iter(document)))


STAGE_SECTIONS = {stage: stage for stage in TOP}  # stages/<stage>.py reads section <stage>


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGE_SECTIONS))
def test_each_stage_stops_on_a_bad_param_before_touching_any_data(tmp_path, stage):
    """No data, no model: the params error still comes first, and nothing is written."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({STAGE_SECTIONS[stage]: {"sed": 1}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{stage}.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: params.yaml: {STAGE_SECTIONS[stage]}.sed: unknown key")
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
