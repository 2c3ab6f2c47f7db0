"""A human-readable summary of evaluation metrics."""

import numbers


def format_metrics(metrics: dict) -> str:
    """Summarises the dict of `log_likelihood` (or any dict of scalar metrics).

    Known keys get one line each, in the order log-likelihood (with its K,
    `num_samples` or `importance_samples`), NLL (with bits per dimension),
    ELBO (with its reconstruction and KL terms), the training loss and
    active units; any other scalar is listed after them as `name: value`. Arrays and
    lists (`per_example`) are not printed.

    Args:
        metrics: dict. For example the return value of `log_likelihood`, or
            the `elbo`, `reconstruction`, `kl` and `loss` of `model.evaluate`.

    Returns:
        A multi-line string without a trailing newline.

    Example:

    >>> print(format_metrics({"elbo": -95.0, "reconstruction": -70.0, "kl": 25.0}))
    ELBO: -95.00 nats (reconstruction -70.00, KL 25.00)
    """
    if not isinstance(metrics, dict):
        raise ValueError(
            f"Expected metrics to be a dict. Received: metrics of type {type(metrics).__name__}"
        )
    lines, used = [], set()

    def take(*keys):
        """The values of `keys` if all are present (and marks them shown), else `None`."""
        if any(metrics.get(key) is None for key in keys):
            return None
        used.update(keys)
        return [metrics[key] for key in keys]

    if take("log_likelihood"):
        details = []
        counts = [take(key) for key in ("num_samples", "importance_samples")]
        k = next((count[0] for count in counts if count), None)
        if k is not None:
            details.append(f"K={k}")
        if take("num_examples"):
            details.append(f"{metrics['num_examples']} examples")
        suffix = f" (importance-weighted, {', '.join(details)})" if details else ""
        lines.append(f"Log-likelihood: {metrics['log_likelihood']:.2f} nats{suffix}")
    if take("nll"):
        bits = take("bits_per_dim")
        suffix = f" ({bits[0]:.4f} bits/dim)" if bits else ""
        lines.append(f"NLL: {metrics['nll']:.2f} nats{suffix}")
    if take("elbo"):
        terms = take("reconstruction", "kl")
        estimator = take("kl_estimator")
        kind = {"analytic": "analytic ", "monte_carlo": "Monte Carlo "}.get(
            estimator[0] if estimator else None, ""
        )
        suffix = f" (reconstruction {terms[0]:.2f}, {kind}KL {terms[1]:.2f})" if terms else ""
        lines.append(f"ELBO: {metrics['elbo']:.2f} nats{suffix}")
    if take("loss"):
        lines.append(f"Loss: {metrics['loss']:.2f} nats (the objective training minimises)")
    if take("active_units"):
        total = take("latent_dim")
        suffix = f" of {total[0]}" if total else ""
        lines.append(f"Active units: {metrics['active_units']}{suffix}")
    for key, value in metrics.items():
        if key not in used and isinstance(value, numbers.Real) and not isinstance(value, bool):
            lines.append(f"{key}: {value:.4g}")
    return "\n".join(lines)
