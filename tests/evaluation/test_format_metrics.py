import numpy as np
import pytest

from keras_vae.evaluation import format_metrics


@pytest.mark.parametrize(
    "estimator, name", [("analytic", "analytic KL"), ("monte_carlo", "Monte Carlo KL")]
)
def test_log_likelihood_metrics(estimator, name):
    metrics = {
        "log_likelihood": -86.2149,
        "nll": 86.2149,
        "bits_per_dim": 0.158632,
        "elbo": -90.371,
        "reconstruction": -65.126,
        "kl": 25.245,
        "latent_dim": 3,
        "active_units": 2,
        "num_samples": 5000,
        "num_examples": 10000,
        "per_example": np.zeros(10000),
        "kl_estimator": estimator,
    }
    assert format_metrics(metrics) == (
        "Log-likelihood: -86.21 nats (importance-weighted, K=5000, 10000 examples)\n"
        "NLL: 86.21 nats (0.1586 bits/dim)\n"
        f"ELBO: -90.37 nats (reconstruction -65.13, {name} 25.25)\n"
        "Active units: 2 of 3"
    )


def test_evaluate_metrics_and_other_scalars():
    metrics = {"loss": 95.5, "elbo": -95.5, "reconstruction": -70.25, "kl": 25.25, "lr": 1e-3}
    assert format_metrics(metrics) == (
        "ELBO: -95.50 nats (reconstruction -70.25, KL 25.25)\n"
        "Loss: 95.50 nats (the objective training minimises)\nlr: 0.001"
    )


def test_evaluate_model_metrics_name_their_k():
    # keras-vae evaluate reports K as importance_samples: the K was not shown.
    metrics = {"log_likelihood": -90.0, "nll": 90.0, "importance_samples": 5}
    assert format_metrics(metrics) == (
        "Log-likelihood: -90.00 nats (importance-weighted, K=5)\nNLL: 90.00 nats"
    )
    both = format_metrics({**metrics, "num_samples": 5})
    assert both.count("K=5") == 1 and "importance_samples" not in both
    assert format_metrics({"kl": 3.0, "active_units": 0}) == "Active units: 0\nkl: 3"


def test_not_a_dict():
    with pytest.raises(
        ValueError, match="Expected metrics to be a dict. Received: metrics of type list"
    ):
        format_metrics([1.0])
