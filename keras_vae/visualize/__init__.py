"""Pictures of a trained model: reconstructions, interpolations, traversals, manifolds, latents."""

from keras_vae.visualize.decoded_images import decoded_images
from keras_vae.visualize.encoded_points import encoded_points
from keras_vae.visualize.latent_activity import latent_activity
from keras_vae.visualize.model_inputs import as_images, image_shape, model_inputs
from keras_vae.visualize.pca_projection import pca_projection
from keras_vae.visualize.picture_grid import picture_grid
from keras_vae.visualize.plot_interpolations import plot_interpolations
from keras_vae.visualize.plot_latents import latent_coordinates, plot_latents
from keras_vae.visualize.plot_manifold import manifold_latents, plot_manifold
from keras_vae.visualize.plot_reconstructions import plot_reconstructions
from keras_vae.visualize.plot_samples import plot_samples
from keras_vae.visualize.plot_traversal import plot_traversal, traversal_latents
from keras_vae.visualize.prior_moments import prior_moments
from keras_vae.visualize.row_labels import with_row_labels
from keras_vae.visualize.save_png import check_png_path, save_png

__all__ = [
    "as_images",
    "check_png_path",
    "decoded_images",
    "encoded_points",
    "image_shape",
    "latent_activity",
    "latent_coordinates",
    "manifold_latents",
    "model_inputs",
    "pca_projection",
    "picture_grid",
    "plot_interpolations",
    "plot_latents",
    "plot_manifold",
    "plot_reconstructions",
    "plot_samples",
    "plot_traversal",
    "prior_moments",
    "save_png",
    "traversal_latents",
    "with_row_labels",
]
