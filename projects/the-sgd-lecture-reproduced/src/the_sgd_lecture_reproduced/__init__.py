"""The SGD Lecture, Reproduced

A course project built on PyTorch Lightning. Start with `uv run python train.py fit`, then read
src/the_sgd_lecture_reproduced/problems/.
"""
