"""Evaluation: inference over a split, metrics, plot data and reports."""
