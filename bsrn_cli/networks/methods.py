"""Binarization methods as configurations of the same layers (Xin et al. 2020, Tables 1-5).

A method says how a binary conv's weights and input activations are quantized, and whether
BAM accumulates them. Every backbone (BSRN, VDSR, SRResNet) takes every method through the
fields of :class:`Binarization`; nothing else in a model depends on the method.

- ``fp``: full precision; a ReLU where the others binarize activations.
- ``bnn``: sign(W), sign(A), straight-through estimator clipped at 1 (Hubara et al. 2016).
- ``dorefa``: sign(W) * E|W| per layer, activations round(clip(A, 0, 1)) in {0, 1} (Zhou et al. 2016).
- ``abc``: W as 3 least-squares-weighted binary bases, activations beta * H(A + v) (Lin et al. 2017).
- ``ma``: sign(W) * E|W| per output channel, full-precision activations (Ma et al. 2019).
- ``bam``: the bit-accumulation mechanism of eq. 3 (weights) and eq. 9/10 (activations);
  its ablations ``bam-w1``/``bam-w2``/``bam-a1``/``bam-a2`` fix or drop the accumulation weights.

Two later-work options combine with any method (from later binary SR work; docs/architecture.md): ``fp_skip`` (a float
identity around every binary conv) and ``rprelu`` with ``threshold`` (a learned per-channel
threshold before the sign and an RPReLU after the conv).
"""

from __future__ import annotations

from bsrn_cli.networks.configs import (  # noqa: F401 (the methods' names, where the layers look for them)
    BINARIZATION_FIELDS, METHODS, Binarization, Method, method_fields)
