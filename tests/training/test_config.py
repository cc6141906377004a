import pytest

from fcnn_opt import TrainConfig


def test_description_matches_the_original_legend():
    config = TrainConfig(lib="torch", dims=(8,), optimizer="adam")
    assert config.description(["lib", "units", "optimizer"], n_outputs=4) == "lib: torch, units: 2-8-4, optimizer: adam"
    assert TrainConfig(lib="ks").lib == "keras"
    assert "act: tanh" in TrainConfig(activation="tanh").description(["act"])


@pytest.mark.parametrize("field,value,allowed", [
    ("lib", "jax", "numpy, torch, tf, keras, sklearn"),
    ("activation", "gelu", "relu, tanh, sigmoid"),
    ("optimizer", "lbfgs", "sgd, adam, rmsprop, adagrad"),
    ("lr", 0.0, "> 0"),
    ("lr", float("nan"), "> 0"),
    ("epochs", 0, ">= 1"),
    ("batch_size", 2.5, ">= 1"),
    ("l2", -1.0, ">= 0"),
    ("dims", (8, 0), "positive integers"),
    ("dims", "8", "positive integers"),
    ("seed", -1, "non-negative"),
])
def test_bad_values_name_field_value_and_what_is_allowed(field, value, allowed):
    with pytest.raises(ValueError) as info:
        TrainConfig(**{field: value})
    message = str(info.value)
    assert field in message and allowed in message and "Received" in message


def test_round_trip_and_replace():
    config = TrainConfig(dims=(4, 4), lr=0.01)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.replace(epochs=3).epochs == 3
    with pytest.raises(ValueError, match="Unknown TrainConfig field"):
        TrainConfig.from_dict({"units": 3})
