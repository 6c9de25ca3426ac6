"""Networks, quantizers and the weights format."""
