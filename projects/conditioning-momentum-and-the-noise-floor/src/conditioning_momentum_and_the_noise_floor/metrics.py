"""Which metrics are better higher: what the family's LightningModule declares, else the usual names.

A family's module declares the metrics it logs that are better higher, by the last part of their
tag (problems/vision.py: `metrics_higher_is_better = ("acc",)`); every other metric is best at its
minimum. A module that declares nothing (None, CourseModule's default) gets the usual names below.
Training (run/summary.py, the best value of each metric) and the reporting side (report/runs.py,
report/compare.py) both ask here; this module imports neither, so training never loads reporting.

    >>> higher_is_better("val/acc"), higher_is_better("val/loss"), higher_is_better("val/reward", ("reward",))
    (True, False, True)
"""

import re
from collections.abc import Collection

# The usual names of metrics where larger is better (by the last part of the tag), for a module
# that declares none.
HIGHER_IS_BETTER = re.compile(r"(acc|accuracy|auc|auroc|f1|precision|recall|r2|psnr|ssim)$")


def higher_is_better(metric: str, declared: Collection[str] | None = None) -> bool:
    """Whether larger values of `metric` (a tag such as val/acc) are better: by `declared` (the
    module's metrics_higher_is_better), or by the usual names when it is None."""
    name = metric.rsplit("/", 1)[-1]
    return name in declared if declared is not None else bool(HIGHER_IS_BETTER.search(name))
