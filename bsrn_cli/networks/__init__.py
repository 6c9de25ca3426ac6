"""The networks (BSRN and the comparison backbones), their layers, quantizers and configurations."""
