import re
from pathlib import Path

import pytest

from torchstages.errors import UserError
from torchstages.params.base import load_section
from torchstages.params.build_dataset import BuildDatasetParams
from torchstages.params.evaluate import EvaluateParams
from torchstages.params.export import ExportParams
from torchstages.params.reference import params_reference
from torchstages.params.split import SplitParams
from torchstages.params.train import TrainParams

ROOT = Path(__file__).resolve().parents[1]


def _load(tmp_path, text, model, section):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_section(model, section, path)


def _refused(tmp_path, text, model, section) -> str:
    """The one line a params file is refused with, less the file's path."""
    with pytest.raises(UserError) as err:
        _load(tmp_path, text, model, section)
    return str(err.value).removeprefix(f"{tmp_path / 'params.yaml'}: ")


def test_unknown_key_suggests_the_close_one(tmp_path):
    with pytest.raises(UserError) as err:
        _load(tmp_path, "train:\n  lrr: 0.1\n", TrainParams, "train")
    msg = str(err.value)
    assert "params.yaml: train.lrr: unknown key (did you mean 'lr'?" in msg
    assert "\n" not in msg


def test_unknown_nested_key_names_the_full_path(tmp_path):
    with pytest.raises(
        UserError,
        match=r"train\.model\.chanels: unknown key \(did you mean "
        r"'channels'\?",
    ):
        _load(tmp_path, "train:\n  model: {name: cnn, chanels: [4]}\n", TrainParams, "train")
    with pytest.raises(
        UserError,
        match=r"train\.augment\.rotate: unknown key \(did you mean "
        r"'rotation'",
    ):
        _load(tmp_path, "train:\n  augment: {rotate: 3}\n", TrainParams, "train")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            "{name: cnnn}",
            "train.model.name: unknown 'cnnn' (did you mean 'cnn'? allowed: mlp, cnn,",
        ),
        ("{name: GRU}", "train.model.name: unknown 'GRU' (did you mean 'gru'? allowed:"),
        ("{hidden: [8]}", "train.model.name: missing (one of: mlp, cnn, torchvision,"),
        # a member picked by its second name (lstm or gru) is found for the key hint too
        ("{name: gru, hiden: 8}", "train.model.hiden: unknown key (did you mean 'hidden'?"),
        # keys that several other models read: named as any of them
        (
            "{name: tcn, embedding_dim: 16}",
            "train.model: keys of 'lstm' or 'textcnn' or 'transformer' are left beside name 'tcn'",
        ),
        # only the name changed in params.yaml's cnn section: say how to replace it whole
        (
            "{name: mlp, channels: [32], convs_per_block: 2}",
            "; train.model: keys of 'cnn' are left beside name 'mlp': replace the whole section, "
            "e.g. dvc exp run -S '~train.model' -S '+train.model={name: mlp}'",
        ),
    ],
)
def test_a_model_name_typo_names_the_choices(tmp_path, model, message):
    with pytest.raises(UserError) as err:
        _load(tmp_path, f"train:\n  model: {model}\n", TrainParams, "train")
    assert message in str(err.value) and "Input tag" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("train:\n  lr: -1\n", "train.lr: Input should be greater than 0"),
        ("train:\n  epochs: many\n", "train.epochs: Input should be a valid integer"),
        ("train:\n  optimizer: adamax\n", "train.optimizer: Input should be 'sgd', 'adam'"),
        ("train:\n  model: {name: vit}\n", "train.model"),
        ("train:\n  lr: .inf\n", "train.lr: Input should be a finite number (got inf)"),
        (
            "train:\n  model: {name: cnn, channels: [32, 0]}\n",
            "train.model.channels.1: Input should be greater than 0",
        ),
        (
            "train:\n  schedule: {name: multistep, milestones: [-5]}\n",
            "train.schedule.milestones.0: Input should be greater than 0",
        ),
        (
            "train:\n  schedule: {name: onecycle, warmup_epochs: 2}\n",
            "train.schedule: warmup_epochs does not apply to onecycle",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, fragment):
    with pytest.raises(UserError) as err:
        _load(tmp_path, text, TrainParams, "train")
    assert fragment in str(err.value)
    assert "{" not in str(err.value).split(": ", 2)[-1]  # no dump of the section or model


@pytest.mark.parametrize("size", ["0", "[16, -3]"])
def test_image_size_must_be_positive(tmp_path, size):
    with pytest.raises(
        UserError, match=r"build_dataset\.image_size: every side must be at least 1"
    ):
        _load(
            tmp_path, f"build_dataset:\n  image_size: {size}\n", BuildDatasetParams, "build_dataset"
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  epochs: true\n", "train.epochs: Input should be an integer, not a boolean"),
        ("train:\n  lr: false\n", "train.lr: Input should be a number, not a boolean (got False)"),
        (
            "train:\n  model: {name: cnn, channels: [32, true]}\n",
            "train.model.channels: Input should be a list of integers, not a boolean",
        ),
        (
            "train:\n  model: {name: mlp, embedding_dims: {city: true}}\n",
            "train.model.embedding_dims: Input should be a mapping of strings to integers, not a "
            "boolean",
        ),
        (
            "build_dataset:\n  image_size: true\n",
            "build_dataset.image_size: Input should be an integer or a list of 2 integers, not a "
            "boolean (got True)",
        ),
    ],
)
def test_a_boolean_is_not_a_number(tmp_path, text, message):
    """pydantic would read true as 1: `epochs: true` trained one epoch."""
    section = text.split(":")[0]
    model = {"train": TrainParams, "build_dataset": BuildDatasetParams}[section]
    with pytest.raises(UserError, match=re.escape(message)):
        _load(tmp_path, text, model, section)


def test_a_bad_item_is_named_without_a_false_length_error(tmp_path):
    with pytest.raises(UserError) as raised:
        _load(tmp_path, "export:\n  formats: [tflite]\n", ExportParams, "export")
    assert str(raised.value).endswith(
        "export.formats.0: Input should be 'onnx', 'pt2' or 'onnx-int8' (got 'tflite')"
    )
    message = "split.table.features: List should have at least 1 item"
    with pytest.raises(UserError, match=re.escape(message)):
        _load(tmp_path, "split:\n  table: {features: []}\n", SplitParams, "split")


def test_an_embedding_width_below_one_is_refused(tmp_path):
    text = "train:\n  model: {name: mlp, embedding_dims: {city: -3}}\n"
    message = "train.model.embedding_dims.city: Input should be greater than or equal to 1"
    with pytest.raises(UserError, match=re.escape(message)):
        _load(tmp_path, text, TrainParams, "train")


def test_what_lax_reading_accepts_besides_booleans_stays(tmp_path):
    text = "train:\n  lr: 1\n  epochs: '5'\n  channels_last: true\n  deterministic: false\n"
    params = _load(tmp_path, text, TrainParams, "train")
    assert (params.lr, params.epochs, params.channels_last) == (1.0, 5, True)
    assert isinstance(params.lr, float) and params.deterministic is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image_size: [16]", "build_dataset.image_size: Input should be an integer or a list of 2 "
         "integers (got [16])"),
        ("image_size: [8, 8, 3]", "build_dataset.image_size: Input should be an integer or a list "
         "of 2 integers (got [8, 8, 3])"),
        ("text: {max_len: all}", "build_dataset.text.max_len: Input should be 'auto' or an integer "
         "(got 'all')"),
        # a value of one member's kind: that member's own complaint, alone
        ("text: {max_len: 0}", "build_dataset.text.max_len: Input should be greater than or equal "
         "to 1 (got 0)"),
    ],
)  # fmt: skip
def test_a_union_error_is_one_sentence_naming_the_key(tmp_path, text, message):
    text = f"build_dataset:\n  {text}\n"
    assert _refused(tmp_path, text, BuildDatasetParams, "build_dataset") == message


@pytest.mark.parametrize(
    ("text", "model", "section", "message"),
    [
        ("split: {table: [y, x]}", SplitParams, "split",
         "split.table: Input should be a mapping of keys (got ['y', 'x'])"),
        ("train: {model: cnn}", TrainParams, "train",
         "train.model: Input should be a mapping of keys, e.g. {name: cnn} (got 'cnn')"),
        ("train: {schedule: 3}", TrainParams, "train",
         "train.schedule: Input should be a mapping of keys (got 3)"),
        ("export: {formats: onnx}", ExportParams, "export",
         "export.formats: Input should be a list of 'onnx', 'pt2' or 'onnx-int8' (got 'onnx')"),
        ("validate: {device: gpu}", EvaluateParams, "validate",
         "validate.device: Input should be 'auto', 'cpu', 'cuda' or 'mps' (got 'gpu')"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_shape_is_named_in_yaml_words(tmp_path, text, model, section, message):
    """Not pydantic's Python words: "a valid tuple", "instance of TableSplitParams", a regex."""
    assert _refused(tmp_path, text + "\n", model, section) == message


def test_a_union_error_inside_a_model_picked_by_name(tmp_path):
    with pytest.raises(UserError) as err:
        _load(tmp_path, "train:\n  model: {name: mlp, linear_weight: x}\n", TrainParams, "train")
    assert str(err.value).endswith(
        "params.yaml: train.model.linear_weight: Input should be 'auto' or a number (got 'x')"
    )


def test_a_rule_over_several_keys_does_not_dump_the_section(tmp_path):
    with pytest.raises(UserError) as err:
        _load(tmp_path, "train: {nproc_per_node: 2, batch_size: 1}\n", TrainParams, "train")
    assert str(err.value).endswith(
        "params.yaml: train: batch_size 1 must be divisible by nproc_per_node 2 (each process "
        "takes an equal share)"
    )


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("{name: multistep, milestones: [25, 20]}", "train.schedule: milestones [25, 20] must "
         "be increasing epochs, each once"),
        ("{name: multistep, milestones: [20, 20]}", "train.schedule: milestones [20, 20] must "
         "be increasing epochs, each once"),
        ("{name: multistep, milestones: [10, 30]}", "train: schedule.milestones [30] would never "
         "come: epochs is 30"),
        ("{warmup_epochs: 30}", "train: schedule.warmup_epochs 30 would never come: epochs is 30"),
    ],
)  # fmt: skip
def test_the_schedule_must_fit_in_the_epochs(tmp_path, schedule, message):
    text = f"train:\n  epochs: 30\n  schedule: {schedule}\n"
    assert _refused(tmp_path, text, TrainParams, "train") == message


def test_milestones_beyond_the_epochs_are_fine_for_other_schedules(tmp_path):
    # params.yaml keeps multistep's milestones [20, 25] under cosine; epochs 2 must still load,
    # and milestones that only multistep reads may be in any order under another schedule
    text = "train:\n  epochs: 2\n  schedule: {name: cosine, milestones: [25, 20]}\n"
    assert _load(tmp_path, text, TrainParams, "train").epochs == 2


def test_the_schedule_is_checked_against_epochs_as_written_not_a_tables_shrunk_count(tmp_path):
    """A table's default 30 epochs shrink with its rows (to 5 here) and params_for_kind validates
    the result again: a schedule that fits the shrunk count loads, one that does not is named
    there in the words of a user's error, not as the validator's failure."""
    from torchstages.training.data import params_for_kind

    meta = {"kind": "table", "task": "classification", "counts": {"train": 100_000}}
    text = "train:\n  schedule: {name: multistep, milestones: [2, 3], warmup_epochs: 1}\n"
    assert params_for_kind(_load(tmp_path, text, TrainParams, "train"), meta).epochs == 5
    text = "train:\n  schedule: {name: multistep, milestones: [20, 25], warmup_epochs: 10}\n"
    params = _load(tmp_path, text, TrainParams, "train")
    with pytest.raises(UserError, match=r"^train.schedule.milestones \[20, 25\] would never"):
        params_for_kind(params, meta)


def test_seeds_take_what_their_generators_take(tmp_path):
    from torchstages.params.evaluate import EvaluateParams

    # numpy's PCG64 refuses a negative seed: validate and test stopped after scoring
    with pytest.raises(UserError, match=r"validate\.bootstrap_seed: Input should be greater than "):
        _load(tmp_path, "validate: {bootstrap_seed: -1}\n", EvaluateParams, "validate")
    # torch.manual_seed overflows past 64 bits, and wraps a negative seed around
    with pytest.raises(UserError, match=r"train\.seed: Input should be less than or equal to "):
        _load(tmp_path, f"train: {{seed: {2**64}}}\n", TrainParams, "train")
    assert _load(tmp_path, "train: {seed: -1}\n", TrainParams, "train").seed == -1
    # the split hashes its seed as text: any integer draws a split
    assert _load(tmp_path, "split: {seed: -1}\n", SplitParams, "split").seed == -1


def test_the_near_duplicate_threshold_says_why_it_stops_where_the_pair_search_does():
    import numpy as np

    from torchstages.data.near_duplicates import HASH_BITS, near_pairs

    field = SplitParams.model_fields["near_duplicate_threshold"]
    limit = next(m.le for m in field.metadata if hasattr(m, "le"))
    assert f"at most {limit}: the exact search for close pairs" in field.description
    bits = np.zeros((2, HASH_BITS), dtype=bool)
    assert len(near_pairs(bits, limit)) == 1
    with pytest.raises(ValueError, match="threshold must be in"):
        near_pairs(bits, limit + 1)


def test_fractions_must_sum_to_one(tmp_path):
    with pytest.raises(UserError, match="train \\+ val \\+ test must sum to 1, got 1.1"):
        _load(tmp_path, "split: {train: 0.8, val: 0.15, test: 0.15}\n", SplitParams, "split")


def test_empty_section_means_defaults_and_params_are_frozen(tmp_path):
    params = _load(tmp_path, "other: {}\nbuild_dataset:\n", BuildDatasetParams, "build_dataset")
    assert params == BuildDatasetParams()
    with pytest.raises(Exception, match="frozen"):
        params.image_size = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("split: {}\nTest:\n  batch_size: 8\n", "test: section missing (did you mean 'Test'? "
         "sections: split, Test)"),
        ("split: {}\n", "test: section missing (sections: split)"),
        ("", "test: section missing (the file has no sections)"),
    ],
)  # fmt: skip
def test_a_missing_section_is_an_error_not_defaults(tmp_path, text, message):
    """python stages/test.py (each node of a multi-node run) read a misspelt Test: as absent and
    scored at the defaults; only dvc repro caught it."""
    from torchstages.params.evaluate import EvaluateParams

    with pytest.raises(UserError) as err:
        _load(tmp_path, text, EvaluateParams, "test")
    assert str(err.value) == f"{tmp_path / 'params.yaml'}: {message}"


def test_missing_or_broken_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="nope.yaml: file not found"):
        load_section(SplitParams, "split", tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="not valid YAML"):
        _load(tmp_path, "split: [\n", SplitParams, "split")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # an unclosed list: where PyYAML noticed, and where the list opened
        (
            "split:\n  seed: 1\n  bad: [\ntrain:\n  lr: 0.1\n",
            "not valid YAML: line 5, column 5: expected ',' or ']', but got ':' (while parsing a "
            "flow sequence at line 3)",
        ),
        ("split:\n  seed: a: 1\n", "not valid YAML: line 2, column 10: mapping values are not "
         "allowed here"),
    ],
)  # fmt: skip
def test_a_yaml_error_says_where_on_one_line(tmp_path, text, message):
    assert _refused(tmp_path, text, SplitParams, "split") == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  epochs: 30\n  lr: 0.1\n  epochs: 3\n", "train.epochs: given twice, on lines 2 "
         "and 4"),
        ("train:\n  lr: 0.1\nsplit: {}\ntrain:\n  lr: 0.2\n", "train: given twice, on lines 1 "
         "and 4"),
        ("train:\n  model: {name: cnn, channels: [8], channels: [16]}\n", "train.model.channels: "
         "given twice, on line 2"),
    ],
)  # fmt: skip
def test_a_key_given_twice_is_refused(tmp_path, text, message):
    """PyYAML keeps the last silently: epochs: 30 then epochs: 3 further down trained 3."""
    said = _refused(tmp_path, text, TrainParams, "train")
    assert said.startswith(f"{message} (delete one") and "\n" not in said


def test_keys_beside_a_merge_override_it(tmp_path):
    text = "base: &base {lr: 0.1, epochs: 3}\ntrain:\n  <<: *base\n  lr: 0.2\n"
    assert _load(tmp_path, text, TrainParams, "train").lr == 0.2


def test_committed_params_yaml_is_valid_and_uses_every_section():
    from torchstages.params.evaluate import EvaluateParams
    from torchstages.params.export import ExportParams

    for model, section in [
        (SplitParams, "split"),
        (BuildDatasetParams, "build_dataset"),
        (TrainParams, "train"),
        (EvaluateParams, "validate"),
        (EvaluateParams, "test"),
        (ExportParams, "export"),
    ]:
        assert load_section(model, section, ROOT / "params.yaml") is not None


def test_committed_params_yaml_states_the_model_defaults():
    """params.yaml shows users every knob at its default; the README tables say the same."""
    import yaml

    from torchstages.params.reference import SECTIONS

    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, model in [
        ("split", SplitParams),
        ("build_dataset", BuildDatasetParams),
        ("train", TrainParams),
    ]:
        assert model.model_validate(data[section]) == model(), section
    assert SECTIONS


def test_committed_params_yaml_names_every_key():
    """Every key of every section is in params.yaml, so `dvc exp run -S key=value` can set it
    (DVC refuses a key the file lacks) and `dvc params diff` shows it."""
    import yaml

    from torchstages.params.evaluate import EvaluateParams
    from torchstages.params.export import ExportParams

    def paths(tree: dict, prefix: str) -> set[str]:
        found = set()
        for key, value in tree.items():
            found.add(f"{prefix}.{key}")
            if isinstance(value, dict):
                found |= paths(value, f"{prefix}.{key}")
        return found

    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, model in [
        ("split", SplitParams),
        ("build_dataset", BuildDatasetParams),
        ("train", TrainParams),
        ("validate", EvaluateParams),
        ("test", EvaluateParams),
        ("export", ExportParams),
    ]:
        missing = paths(model().model_dump(mode="json"), section) - paths(data[section], section)
        assert not missing, missing


def test_readme_params_tables_are_generated_from_the_models():
    readme = (ROOT / "README.md").read_text()
    assert params_reference() in readme, "README params tables are stale: run `torchstages params`"


def test_near_duplicates_off_unquoted_is_off(tmp_path):
    """YAML reads an unquoted off as false, and dvc exp run -S writes it unquoted: it was
    refused as "Input should be 'group', 'report' or 'off' (got False)"."""
    assert (
        _load(tmp_path, "split:\n  near_duplicates: off\n", SplitParams, "split").near_duplicates
        == "off"
    )


def test_an_opset_below_18_is_refused(tmp_path):
    """torch's exporter writes opset 18; converted down to 17 a table model's graph did not
    load (ReduceLogSumExp), after a whole export stage."""
    from torchstages.params.export import ExportParams

    said = _refused(tmp_path, "export:\n  opset: 17\n", ExportParams, "export")
    assert "export.opset: Input should be greater than or equal to 18" in said
