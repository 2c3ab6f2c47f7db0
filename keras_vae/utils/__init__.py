from keras_vae.utils.images import check_image_path, image_grid, save_images

__all__ = ["check_image_path", "image_grid", "save_images"]
