"""A principal component projection of latent points, for the `latents` picture."""

import numpy as np


def pca_projection(points: np.ndarray, num_components: int = 2) -> np.ndarray:
    """Projects points `[N, D]` onto their first principal components.

    The points are centred and projected on the eigenvectors of their
    covariance with the largest eigenvalues, largest first. Each direction's
    sign makes its largest loading positive, so the projection does not flip
    between runs.

    Args:
        points: float array `[N, D]` with `D >= num_components`.
        num_components: int. Defaults to `2`.

    Returns:
        float64 array `[N, num_components]`.

    Example:

    >>> pca_projection(np.array([[0.0, 0.0], [2.0, 2.0]]), 1)
    array([[-1.41421356],
           [ 1.41421356]])
    """
    points = np.asarray(points, dtype="float64")
    if points.ndim != 2 or points.shape[1] < num_components or len(points) < 2:
        raise ValueError(
            f"Expected at least two points shaped [N, D] with D >= {num_components}. "
            f"Received: points.shape={points.shape}"
        )
    centred = points - points.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    directions = eigenvectors[:, np.argsort(eigenvalues)[::-1][:num_components]]
    largest = np.argmax(np.abs(directions), axis=0)
    directions = directions * np.sign(directions[largest, np.arange(num_components)])
    return centred @ directions
