"""keras-vae: variational autoencoders on Keras 3 and TensorFlow Probability."""
