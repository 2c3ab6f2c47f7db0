from keras_vae.utils.images import image_grid, save_images

__all__ = ["image_grid", "save_images"]
