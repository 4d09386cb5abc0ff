#!/usr/bin/env bash
# Re-make every result of this example from scratch: the runs (three sweeps and three single
# runs), the figures, the tables, and the numbers in report.md and slides/slides.md.
#
#   bash reproduce.sh                      # with uv, as the course sets it up
#   PYTHON=python bash reproduce.sh        # in an activated environment without uv
#
# About 5 minutes on a 2-core laptop CPU, one thread per run (4.4 to 8.5 minutes measured, as other
# jobs shared the cores). A GPU would not help: the problems have 2 or 20 variables, the configs run
# them on the CPU, and every step costs the same few milliseconds of Python.
# It deletes this example's runs/ folders first: a sweep that finds its finished runs would
# only say so, and a named run that exists would be repeated under another name.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-uv run python}
FIGURES="$PYTHON -m conditioning_momentum_and_the_noise_floor.figures"
QUIET=(--trainer.enable_progress_bar false --trainer.enable_model_summary false)

rm -rf runs/conditioning_gd_kappa runs/conditioning_momentum runs/conditioning_noise_floor runs/objective_zigzag
rm -f figures/*.png figures/*.pdf figures/*results.md figures/*results.tex

# 1. Gradient descent against the condition number (kappa 1, 10, 100, 1000; 3 seeds)
$PYTHON sweep.py --config configs/sweeps/conditioning_gd_kappa.yaml --no-compare
for kappa in 10 100 1000; do  # one figure per kappa: measured curve, expected curve and rate bound
  $FIGURES "runs/conditioning_gd_kappa/condition_number${kappa}_*" --metrics train/suboptimality \
    --prefix "gd_kappa${kappa}_" --embed
done

# 2. Heavy ball and Nesterov with their textbook parameters (kappa 10, 100, 1000; 3 seeds)
$PYTHON sweep.py --config configs/sweeps/conditioning_momentum.yaml --no-compare
$FIGURES "runs/conditioning_momentum/condition_number1000_*" --metrics train/suboptimality \
  --prefix momentum_kappa1000_ --embed

# ...and the lecture's zigzag picture: three runs of configs/objective_zigzag.yaml, their paths
$PYTHON train.py fit --config configs/objective_zigzag.yaml --name gd "${QUIET[@]}"
$PYTHON train.py fit --config configs/objective_zigzag.yaml --optimizer momentum --optimizer.lr 1.0 \
  --optimizer.momentum 0.7 --name heavy_ball "${QUIET[@]}"
$PYTHON train.py fit --config configs/objective_zigzag.yaml --optimizer adam --optimizer.lr 0.3 --name adam "${QUIET[@]}"
# no prefix: figures/trajectories.png, loss.png, train_suboptimality.png and results.md, whose table
# goes into report.md and slides/slides.md (between their figures:results markers)
$FIGURES objective_zigzag --metrics train/loss val/loss train/suboptimality

# 3. Constant-step SGD's noise floor: 3 step sizes x 3 batch sizes, 3 seeds, 2000 steps
$PYTHON sweep.py --config configs/sweeps/conditioning_noise_floor.yaml --no-compare
$FIGURES "runs/conditioning_noise_floor/*batch_size4_s*" --metrics train/suboptimality --smooth 0.9 \
  --prefix noise_lr_ --embed        # step sizes 0.05, 0.1, 0.2 at batch size 4
$FIGURES "runs/conditioning_noise_floor/lr0.1_*" --metrics train/suboptimality --smooth 0.9 \
  --prefix noise_batch_ --embed     # batch sizes 1, 4, 16 at step size 0.1

# Steps to the tolerance and noise floors, measured against predicted: tables into the report
$PYTHON analyze.py

# Keep what is worth committing: events, configs, trajectories; never checkpoints
find runs -type d -name checkpoints -prune -exec rm -rf {} +
echo "reproduce.sh: done in $((SECONDS / 60)) min $((SECONDS % 60)) s"
