"""Reading and writing images (and later videos) safely."""
