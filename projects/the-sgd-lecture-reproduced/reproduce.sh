#!/usr/bin/env bash
# Re-makes every result of this example: the lecture's grid as three sweeps (every setting with
# seeds 0, 1, 2), then every figure and table of report.md and slides/slides.md.
#
#   bash reproduce.sh               # everything, from scratch (deletes runs/sgd_lecture_*/ first)
#   bash reproduce.sh --figures     # only the figures and tables, from the runs already in runs/
#   PYTHON=python bash reproduce.sh # in an activated virtual environment instead of uv
#
# About 4 minutes on a 2-core laptop CPU (33 runs of a few seconds each, one at a time); see README.md.
set -euo pipefail
cd "$(dirname "$0")"
read -r -a PY <<< "${PYTHON:-uv run python}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # the package without installing it (uv run installs it anyway)
FIGURES=(-m the_sgd_lecture_reproduced.figures)
COMPARE=(-m the_sgd_lecture_reproduced.compare)

if [[ "${1:-}" != "--figures" ]]; then
    rm -rf runs/sgd_lecture_lr runs/sgd_lecture_batch runs/sgd_lecture_momentum  # a sweep would resume them
    # 1. Learning rate: plain SGD at 10, 0.1, 0.001 and Adam at 0.1, 0.001 (15 runs). At its end the
    #    sweep runs the compare command: figures/sgd_lecture_lr_* and the report's compare:results table.
    "${PY[@]}" sweep.py --config configs/sweeps/sgd_lecture_lr.yaml
    # 2. Batch size 16, 64, 256 at lr 0.1 (9 runs); 3. momentum 0, 0.5, 0.9 at lr 0.1 (9 runs).
    "${PY[@]}" sweep.py --config configs/sweeps/sgd_lecture_batch.yaml --no-compare
    "${PY[@]}" sweep.py --config configs/sweeps/sgd_lecture_momentum.yaml --no-compare
    rm -rf runs/sgd_lecture_*/*/checkpoints  # checkpoints are never committed; the event files are
fi

# The lecture's three curves for each set, mean and range over the 3 seeds, against samples seen.
# --all keeps the lr 10 runs, which stop after a few steps, and the batch-256 runs (50 steps), which
# the figures command would otherwise leave out as "stopped before a tenth of the longest run".
CURVES=(--all --x samples --metrics train/loss train/acc test/acc)
# The main set, plain SGD at the three learning rates, keeps the figures command's own file names
# (loss.png: training and validation loss; train_acc.png, test_acc.png, results.md) and fills the
# results table of report.md and slides/slides.md; every other set gets a --prefix and no --embed.
"${PY[@]}" "${FIGURES[@]}" 'runs/sgd_lecture_lr/sgd_*' --all --x samples --metrics train/loss val/loss train/acc test/acc
"${PY[@]}" "${FIGURES[@]}" 'runs/sgd_lecture_lr/adam_*' 'runs/sgd_lecture_lr/sgd_lr0.1_*' "${CURVES[@]}" --prefix adam_ --embed
"${PY[@]}" "${FIGURES[@]}" runs/sgd_lecture_batch "${CURVES[@]}" --prefix batch_ --embed
"${PY[@]}" "${FIGURES[@]}" runs/sgd_lecture_batch --all --x step --metrics train/loss test/acc --prefix batch_steps_ --embed
"${PY[@]}" "${FIGURES[@]}" runs/sgd_lecture_momentum "${CURVES[@]}" --prefix momentum_ --embed
# With one loss metric, <prefix>loss.png is the same picture as <prefix>train_loss.png: drop it.
rm -f figures/{adam,batch,batch_steps,momentum}_loss.{png,pdf}
# Accuracy against the learning rate, SGD beside Adam (the sweep drew it too; --figures redraws it),
# and the steps and seconds to 95% validation accuracy of each batch size and momentum.
"${PY[@]}" "${COMPARE[@]}" --sweep configs/sweeps/sgd_lecture_lr.yaml
"${PY[@]}" "${COMPARE[@]}" --sweep configs/sweeps/sgd_lecture_batch.yaml --embed
"${PY[@]}" "${COMPARE[@]}" --sweep configs/sweeps/sgd_lecture_momentum.yaml --embed
# Those two sweeps have one learning rate, so their sensitivity plot is a single point per line: drop it.
rm -f figures/sgd_lecture_{batch,momentum}_sensitivity.{png,pdf}

# The other tables go into report.md between their own markers (<!-- sgd-lecture:NAME:start --> ... end).
"${PY[@]}" - <<'EOF'
from pathlib import Path

from the_sgd_lecture_reproduced.report.figures import embed_table

for name in ["adam", "batch", "momentum", "sgd_lecture_batch", "sgd_lecture_momentum"]:
    table = Path(f"figures/{name}_results.md").read_text().split("\nRuns behind each row:")[0]
    if not embed_table(Path("report.md"), table.rstrip() + "\n", f"<!-- sgd-lecture:{name}:start -->",
                       f"<!-- sgd-lecture:{name}:end -->"):
        raise SystemExit(f"report.md has no <!-- sgd-lecture:{name}:start --> marker")
print("updated the tables of report.md")
EOF
