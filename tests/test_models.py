import pytest
import torch

from torchstages.errors import UserError
from torchstages.models import build_model, check_output_shape, parse_spec
from torchstages.models.cnn import CNNSpec
from torchstages.models.mlp import MLPSpec


@pytest.mark.parametrize("spec", [CNNSpec(channels=[4, 8, 16]), MLPSpec(hidden=[16])])
@pytest.mark.parametrize(("channels", "size"), [(1, (8, 8)), (3, (13, 21)), (3, (32, 32))])
def test_any_input_shape_gives_one_logit_per_class(spec, channels, size):
    model = build_model(spec, channels, size, 5)
    check_output_shape(model, channels, size, 5)
    out = model.eval()(torch.randn(3, channels, *size))
    assert out.shape == (3, 5)
    # logits, not probabilities: no softmax inside the network
    assert not torch.allclose(out.sum(1), torch.ones(3))


def test_wrong_output_size_is_caught_before_training():
    model = build_model(MLPSpec(hidden=[4]), 1, (4, 4), 3)
    with pytest.raises(UserError, match=r"model output shape \(3,\) does not match 7 classes"):
        check_output_shape(model, 1, (4, 4), 7)


def test_spec_round_trips_through_json_and_bad_spec_is_clear():
    spec = CNNSpec(channels=[3, 5], dropout=0.5)
    assert parse_spec(spec.model_dump(mode="json")) == spec
    with pytest.raises(UserError, match="model spec"):
        parse_spec({"name": "transformer"})


def test_check_output_shape_keeps_training_mode():
    model = build_model(CNNSpec(channels=[4]), 1, (6, 6), 2).train()
    check_output_shape(model, 1, (6, 6), 2)
    assert model.training
