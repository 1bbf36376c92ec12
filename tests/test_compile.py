"""torch.compile on the CPU: the compiled network trains, the saved weights are the plain module's."""

import pytest

from conftest import tiny_train_params
from torchstages.models.saved import load_model
from torchstages.training.loop import TrainOutputs, train

pytestmark = pytest.mark.slow


def test_compiled_training_saves_loadable_weights(tmp_path, processed):
    outputs = TrainOutputs(
        tmp_path / "w.safetensors", tmp_path / "c.json", tmp_path / "k.pt", tmp_path / "live"
    )
    params = tiny_train_params(
        epochs=1, compile=True, model={"name": "mlp", "hidden": [8], "dropout": 0.0}
    )
    card = train(params, processed, outputs)
    model, _ = load_model(outputs.weights, outputs.card)
    assert card["epochs_run"] == 1
    assert not any(k.startswith("_orig_mod") for k in model.state_dict())
