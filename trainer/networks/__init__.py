"""Network architectures, one module per family of networks (no training logic here)."""
