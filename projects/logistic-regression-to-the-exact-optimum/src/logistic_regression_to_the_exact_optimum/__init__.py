"""Logistic Regression to the Exact Optimum

A course project built on PyTorch Lightning. Start with `uv run python train.py fit`, then read
src/logistic_regression_to_the_exact_optimum/problems/.
"""
