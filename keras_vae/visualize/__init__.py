"""Pictures of a trained model: reconstructions, interpolations, traversals, manifolds, latents."""
