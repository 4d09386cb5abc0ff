#!/usr/bin/env bash
# Re-makes every result of this example: four sweeps (on the breast cancer data and on the
# synthetic problem: GD against full-batch Adam, and SGD against Adam on mini-batches of 32; every
# method's learning rate tuned on the same grid, the best of each re-run with 3 fresh seeds), then
# every figure and table of report.md and slides/slides.md.
#
#   bash reproduce.sh               # everything, from scratch (deletes runs/tabular_logreg_*/ first)
#   bash reproduce.sh --figures     # only the figures and tables, from the runs already in runs/
#   PYTHON=python bash reproduce.sh # in an activated virtual environment instead of uv
#
# 168 runs of 50 epochs, two at a time (--workers 2); README.md says how long it took here.
set -euo pipefail
cd "$(dirname "$0")"
read -r -a PY <<< "${PYTHON:-uv run python}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # the package without installing it (uv run installs it anyway)
FIGURES=(-m logistic_regression_to_the_exact_optimum.figures)
COMPARE=(-m logistic_regression_to_the_exact_optimum.compare)
SWEEPS=(breast_cancer_fullbatch breast_cancer_minibatch synthetic_fullbatch synthetic_minibatch)

if [[ "${1:-}" != "--figures" ]]; then
    rm -rf runs/tabular_logreg_*  # a sweep that finds its finished runs would only report them
    for sweep in "${SWEEPS[@]}"; do
        # 2 optimizers x 9 learning rates (x 1 seed on full batches, 3 on mini-batches), then the best
        # learning rate of each optimizer with seeds 100, 101, 102
        "${PY[@]}" sweep.py --config "configs/sweeps/tabular_logreg_${sweep}.yaml" --workers 2 --no-compare
    done
    # Commit event files and configs only: no checkpoints, captured output or empty hparams files
    rm -rf runs/tabular_logreg_*/*/checkpoints runs/tabular_logreg_*/*/output.log runs/tabular_logreg_*/*/hparams.yaml
fi

# Each sweep's learning-rate sensitivity, its best setting against steps and seconds, and its
# table; the mini-batch table of the breast cancer data (SGD against Adam) goes into report.md.
for sweep in "${SWEEPS[@]}"; do
    if [[ $sweep == breast_cancer_minibatch ]]; then embed=(--embed report.md); else embed=(--embed); fi
    "${PY[@]}" "${COMPARE[@]}" --sweep "configs/sweeps/tabular_logreg_${sweep}.yaml" "${embed[@]}"
done

# Held-out loss and accuracy of the four methods' re-runs (what reaching theta* buys on new data):
# loss.png, val_acc.png and results.md (into report.md and slides/slides.md) for the breast cancer
# data; synthetic_*.png and synthetic_results.md for the synthetic problem. --all keeps the
# full-batch runs, which take 50 steps where the mini-batch runs take 550 or 800.
HELD_OUT=(--all --x epoch --metrics val/loss val/acc)
"${PY[@]}" "${FIGURES[@]}" runs/tabular_logreg_breast_cancer_fullbatch_final runs/tabular_logreg_breast_cancer_minibatch_final "${HELD_OUT[@]}"
"${PY[@]}" "${FIGURES[@]}" runs/tabular_logreg_synthetic_fullbatch_final runs/tabular_logreg_synthetic_minibatch_final "${HELD_OUT[@]}" \
    --prefix synthetic_ --embed
rm -f figures/val_loss.{png,pdf} figures/synthetic_val_loss.{png,pdf}  # the same picture as (synthetic_)loss.png

# The headline: excess loss and distance to the optimum against epochs, the sensitivity of every
# method on one grid, SGD's noise floor, and the tables of report.md (see plots.py's docstring)
"${PY[@]}" plots.py
