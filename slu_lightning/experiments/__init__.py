"""Experiments over many runs: ``sweep`` launches a grid of ordinary runs, ``report`` scores them."""
