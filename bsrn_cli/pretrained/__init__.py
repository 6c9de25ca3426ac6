"""Pretrained weights: the file format, the registry of shipped models, the Hub and the loader."""
