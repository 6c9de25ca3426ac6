"""bsrn: an image and video upscaler built on a binarized super-resolution network."""

__version__ = "0.1.0"
