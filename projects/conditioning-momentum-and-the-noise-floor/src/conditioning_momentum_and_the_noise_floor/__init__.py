"""Conditioning, Momentum and the Noise Floor

A course project built on PyTorch Lightning. Start with `uv run python train.py fit`, then read
src/conditioning_momentum_and_the_noise_floor/problems/.
"""
