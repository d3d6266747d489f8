"""Research instruments of the seed papers: adversarial risk, prediction-change stress, influence, receptive field."""
