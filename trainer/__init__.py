"""PyTorch trainer: model families (DCGAN, VAE), data loading, the training loop."""
