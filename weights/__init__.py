"""Shipped weights: the repository's weights/ folder, installed as bsrn_cli.weights."""
