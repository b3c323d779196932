"""Scaling laws: counting parameters and FLOPs, sweeps of runs, and the fits of Chapter 10."""
