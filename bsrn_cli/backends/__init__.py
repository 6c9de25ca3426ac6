"""Inference backends: PyTorch (CPU float reference, CUDA) now; the packed-bit CPU backend later."""
