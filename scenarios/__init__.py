"""Planners' scenario scripts; each runs as ``python scenarios/NAME.py --out DIR [--seed N] [--quick]``."""
