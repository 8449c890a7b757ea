"""Evaluation: score alerts against ground-truth labels, prediction RMSE, and reports."""
