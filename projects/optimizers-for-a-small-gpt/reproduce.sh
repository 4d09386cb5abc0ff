#!/usr/bin/env bash
# Re-makes every result of this example: AdamW, Muon and SignSGD on a small GPT, each over 4 learning
# rates with 3 seeds (one sweep, 36 runs of 500 steps), each run's final weights scored on the test
# text, then every figure and table of report.md and slides/slides.md; last, Lion (written here) scored
# on the course benchmark (25 runs of 300 steps).
#
#   bash reproduce.sh               # everything, from scratch (deletes runs/language_gpt_optimizers/ first)
#   bash reproduce.sh --figures     # only the figures and tables, from the runs already in runs/
#   PYTHON=python bash reproduce.sh # in an activated virtual environment instead of uv
#
# About 12 minutes on a shared 2-core CPU (the sweep's 36 runs of 9-21 s, one at a time, one thread each;
# then the benchmark's 25, two at a time); see README.md.
set -euo pipefail
cd "$(dirname "$0")"
read -r -a PY <<< "${PYTHON:-uv run python}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # the package without installing it (uv run installs it anyway)
FIGURES=(-m optimizers_for_a_small_gpt.figures)
COMPARE=(-m optimizers_for_a_small_gpt.compare)
SWEEP=configs/sweeps/language_gpt_optimizers.yaml
RUNS=runs/language_gpt_optimizers

if [[ "${1:-}" != "--figures" ]]; then
    rm -rf "$RUNS"  # a sweep would resume it
    # 1. The sweep: adamw and signsgd at lr 1e-3, 2e-3, 4e-3, 8e-3, muon at 0.01, 0.02, 0.04, 0.08, seeds
    #    0, 1, 2, every run 500 steps (equal steps). The compare command runs below, after step 2.
    "${PY[@]}" sweep.py --config "$SWEEP" --no-compare
    # 2. The test split: each run's final weights (checkpoints/last.ckpt) on the held-out test text, as
    #    `python train.py test --config <run>/config.yaml --ckpt_path <run>/checkpoints/last.ckpt` would do,
    #    in one process (imports paid once). It logs test/bpb into the run's folder, beside its training.
    "${PY[@]}" - "$RUNS" <<'EOF'
import contextlib
import io
import logging
import sys
from pathlib import Path

from optimizers_for_a_small_gpt.run.cli import main

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # no banner for each of 36 runs
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
for run in sorted(path for path in Path(sys.argv[1]).iterdir() if (path / "config.yaml").is_file()):
    with contextlib.redirect_stdout(io.StringIO()):
        cli = main(["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
                    *QUIET])
    print(f"{run}: test/bpb {float(cli.trainer.callback_metrics['test/bpb']):.4g}")
EOF
    rm -rf "$RUNS"/*/checkpoints  # checkpoints are never committed; the event files are
fi

# The best learning rate of each optimizer (the compare command's choice, lowest mean final val/bpb;
# tests/test_results.py checks that these are still the best).
BEST=("$RUNS/adamw_lr0.004_*" "$RUNS/muon_lr0.04_*" "$RUNS/signsgd_lr0.004_*")
# 3. Learning-rate sensitivity, the best setting of each against steps and seconds, and the comparison
#    table (final val/bpb at 500 steps; steps and seconds to val/bpb 3.3) in report.md.
"${PY[@]}" "${COMPARE[@]}" --sweep "$SWEEP" --embed report.md
# ...and every setting of the sweep, final val/bpb and test/bpb (mean ± std over 3 seeds): report.md's
# gpt:all table (the figures command's table; its 12-line figures are left out, the sensitivity plot shows them).
"${PY[@]}" "${FIGURES[@]}" "$RUNS" --metrics val/bpb test/bpb --prefix all_ --embed
rm -f figures/all_*.{png,pdf}
"${PY[@]}" - <<'EOF'
from pathlib import Path

from optimizers_for_a_small_gpt.report.figures import embed_table

table = Path("figures/all_results.md").read_text().split("\nRuns behind each row:")[0]
if not embed_table(Path("report.md"), table.rstrip() + "\n", "<!-- gpt:all:start -->", "<!-- gpt:all:end -->"):
    raise SystemExit("report.md has no <!-- gpt:all:start --> marker")
print("updated the table of every setting in report.md")
EOF
# 4. Equal steps: training and validation loss (loss.png), and val/bpb, of each best setting against
#    optimizer steps (mean and range over 3 seeds), and the results table with test/bpb (figures:results
#    in report.md and the slides).
"${PY[@]}" "${FIGURES[@]}" "${BEST[@]}" --x step --metrics train/loss val/loss val/bpb test/bpb
# 5. Equal time: the same runs against wall-clock seconds (no table: it is the one above).
"${PY[@]}" "${FIGURES[@]}" "${BEST[@]}" --x time --metrics train/loss val/bpb --prefix time_ --embed
# val_loss.png is val_bpb.png times ln 2 (one token is one byte), and time_loss.png is time_train_loss.png
# again (no val/loss there); test/bpb is one value per run, at its end (the table has it), not a curve.
rm -f figures/val_loss.{png,pdf} figures/time_loss.{png,pdf} figures/test_bpb.{png,pdf} figures/time_results.{md,tex}
# 6. Milliseconds per step of each optimizer, and the val/bpb each best setting reached within the same
#    wall-clock budget (report.md, between its gpt:equal_time markers; figures/language_gpt_optimizers_equal_time.md).
"${PY[@]}" equal_time.py
# 7. Lion (src/optimizers_for_a_small_gpt/lion.py, written for this example) on the course benchmark
#    (docs/benchmark.md): this project's CPU workload is language_small_gpt; 5 studies of 5 trials drawn
#    from benchmark/spaces/lion.yaml, scored against the template's baselines (benchmark/baselines.csv).
#    The leaderboard goes into report.md (benchmark:leaderboard markers), the figures and the tidy
#    results into figures/benchmark_*. About 3 minutes on 2 cores (25 runs of 300 steps, two at a time).
if [[ "${1:-}" != "--figures" ]]; then
    rm -rf runs/benchmark  # a score resumes what it finds
    "${PY[@]}" -m optimizers_for_a_small_gpt.benchmark score --optimizer optimizers_for_a_small_gpt.lion.Lion \
        --space benchmark/spaces/lion.yaml --workers 2 --embed report.md
    rm -rf runs/benchmark/*/*/*/*/checkpoints  # checkpoints are never committed; the event files are
else
    "${PY[@]}" -m optimizers_for_a_small_gpt.benchmark leaderboard --embed report.md
fi
