"""Slow, independent float64 twins of the fast kernels (one module per kernel family); tests only."""
