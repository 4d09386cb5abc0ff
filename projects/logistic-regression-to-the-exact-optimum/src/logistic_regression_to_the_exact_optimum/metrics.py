"""The metric vocabulary that training and reporting share: which metrics are better higher.

Training (run/summary.py, the best value of each metric) and the reporting side (report/: figures.py,
compare.py, runs.py) both import this module; it imports nothing of either, so training never
loads the reporting code.

    >>> higher_is_better("val/acc"), higher_is_better("val/loss")
    (True, False)
"""

import re

# Metrics where larger is better (by the last part of the tag); every other metric is best at its minimum.
HIGHER_IS_BETTER = re.compile(r"(acc|accuracy|auc|auroc|f1|precision|recall|r2|psnr|ssim)$")


def higher_is_better(metric: str) -> bool:
    """Whether larger values of `metric` (a tag such as val/acc) are better."""
    return bool(HIGHER_IS_BETTER.search(metric.rsplit("/", 1)[-1]))
