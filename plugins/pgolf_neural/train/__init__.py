"""Training of the neural expert."""
