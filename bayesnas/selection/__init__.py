"""Selection: draw architectures from the posterior, score them on held-out data, keep the best."""
