import pytest
import torch
from torch import nn

from torchstages.errors import UserError
from torchstages.models import build_model, check_output_shape, describe_model, parse_spec
from torchstages.models.cnn import CNNSpec
from torchstages.models.mlp import MLPSpec
from torchstages.models.torchvision import TorchvisionSpec


@pytest.mark.parametrize("spec", [CNNSpec(channels=[4, 8, 16]), MLPSpec(hidden=[16])])
@pytest.mark.parametrize(("channels", "size"), [(1, (8, 8)), (3, (13, 21)), (3, (32, 32))])
def test_any_input_shape_gives_one_logit_per_class(spec, channels, size):
    model = build_model(spec, channels, size, 5)
    check_output_shape(model, channels, size, 5)
    out = model.eval()(torch.randn(3, channels, *size))
    assert out.shape == (3, 5)
    # logits, not probabilities: no softmax inside the network
    assert not torch.allclose(out.sum(1), torch.ones(3))


@pytest.mark.parametrize(
    ("activation", "cls"),
    [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU), ("gelu", nn.GELU), ("tanh", nn.Tanh)],
)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_mlp_activation_and_batch_norm(activation, cls, batch_norm):
    spec = MLPSpec(hidden=[6, 5], activation=activation, batch_norm=batch_norm, dropout=0.0)
    model = build_model(spec, 1, (4, 4), 3)
    kinds = [type(m) for m in model.net]
    block = (
        [nn.Linear, nn.BatchNorm1d, cls, nn.Dropout] if batch_norm else [nn.Linear, cls, nn.Dropout]
    )
    assert kinds == [nn.Flatten, *block, *block, nn.Linear]
    # BatchNorm's shift replaces the hidden layers' bias; the head keeps its bias
    assert (model.net[1].bias is None) == batch_norm
    assert model.get_submodule(model.head_name) is model.net[-1]
    # train mode with BatchNorm: a batch of 2 goes through and the output is logits per class
    assert model.train()(torch.randn(2, 1, 4, 4)).shape == (2, 3)


def test_mlp_defaults_keep_the_previous_layout():
    """relu, no BatchNorm: state-dict names of earlier saved MLPs still load."""
    model = build_model(MLPSpec(hidden=[8]), 1, (2, 2), 2)
    assert list(model.state_dict()) == ["net.1.weight", "net.1.bias", "net.4.weight", "net.4.bias"]


def test_wrong_output_size_is_caught_before_training():
    model = build_model(MLPSpec(hidden=[4]), 1, (4, 4), 3)
    with pytest.raises(UserError, match=r"model output shape \(3,\) does not match 7 classes"):
        check_output_shape(model, 1, (4, 4), 7)


def test_input_the_model_cannot_take_is_one_line():
    model = build_model(MLPSpec(hidden=[4]), 1, (4, 4), 3)
    with pytest.raises(UserError, match=r"model MLP cannot take input \(C=1, H=5, W=5\): mat1"):
        check_output_shape(model, 1, (5, 5), 3)


@pytest.mark.parametrize(
    "spec",
    [
        CNNSpec(channels=[3, 5], dropout=0.5),
        MLPSpec(activation="gelu", batch_norm=True),
        TorchvisionSpec(arch="efficientnet_b0"),
    ],
)
def test_spec_round_trips_through_json(spec):
    assert parse_spec(spec.model_dump(mode="json")) == spec


def test_bad_spec_is_clear():
    with pytest.raises(UserError, match="model spec"):
        parse_spec({"name": "vit"})
    with pytest.raises(UserError, match="model spec"):
        parse_spec({"name": "torchvision", "arch": "vgg16"})
    with pytest.raises(UserError, match="model spec"):
        parse_spec({"name": "mlp", "activation": "swish"})


def test_check_output_shape_keeps_training_mode():
    model = build_model(CNNSpec(channels=[4]), 1, (6, 6), 2).train()
    check_output_shape(model, 1, (6, 6), 2)
    assert model.training


def test_describe_model_counts_parameters_and_output_shape():
    # 1*2*3=6 inputs -> 4 hidden -> 5 classes
    model = build_model(MLPSpec(hidden=[4]), 1, (2, 3), 5).train()
    info = describe_model(model, 1, (2, 3))
    assert info == {
        "parameters": 6 * 4 + 4 + 4 * 5 + 5,
        "trainable": 6 * 4 + 4 + 4 * 5 + 5,
        "input_shape": [1, 1, 2, 3],
        "output_shape": [1, 5],
    }
    model.net[1].weight.requires_grad_(False)
    assert describe_model(model, 1, (2, 3))["trainable"] == 4 + 4 * 5 + 5
    assert model.training
