"""Optimizers for a Small GPT

A course project built on PyTorch Lightning. Start with `uv run python train.py fit`, then read
src/optimizers_for_a_small_gpt/problems/.
"""
