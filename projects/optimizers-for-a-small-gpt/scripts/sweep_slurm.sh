#!/bin/bash
# Run one sweep with many workers on a SLURM cluster: each task of a job array is one worker
# (sweep.py with one GPU), and all of them share one Optuna study, so each runs the next trial
# no one has taken. More tasks finish the sweep sooner; any number may run at once.
#
#   export SWEEP_STORAGE=postgresql://user:password@dbhost:5432/optuna   # recommended
#   sbatch --array=0-7 scripts/sweep_slurm.sh configs/sweeps/language_optimizers_full.yaml [sweep.py arguments]
#
# The study's storage: SWEEP_STORAGE if set (a PostgreSQL database that the compute nodes can
# reach; Optuna creates its tables the first time), else the sweep's journal file,
# runs/<sweep>/study.journal, in the submit folder, which must then be on a filesystem shared
# by all nodes. Every task writes its runs to runs/<sweep>/ there, as on a laptop.
#
# Before the first job:
#   1. Install the project on the cluster (uv sync, or pip install -e . in a virtual environment)
#      and download the datasets on the login node (compute nodes often have no internet):
#      python train.py fit --config <the sweep's experiment> --config configs/trainer/debug.yaml
#   2. Set the #SBATCH lines below for your cluster: partition, account, time limit, GPUs.
#
# A task stopped by its time limit or by scancel gets SIGTERM first: its trial is marked failed
# and the next sweep.py runs it again, so `sbatch` the same array again to finish. Watch the
# study live from the login node: optuna-dashboard "$SWEEP_STORAGE" (or the journal file).
# Each task prints a line per finished trial into slurm-<job id>_<task id>.out.
#
#SBATCH --job-name=sweep
#SBATCH --array=0-3
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=04:00:00

set -euo pipefail
SWEEP=${1:?usage: sbatch --array=0-N scripts/sweep_slurm.sh configs/sweeps/<name>.yaml [sweep.py arguments]}
shift

cd "${SLURM_SUBMIT_DIR:-.}"
if [ -d .venv ]; then source .venv/bin/activate; fi

STORAGE=()
if [ -n "${SWEEP_STORAGE:-}" ]; then STORAGE=(--storage "$SWEEP_STORAGE"); fi

# One worker per task, on the task's GPU and CPUs. A task that finds nothing left to start
# waits for the others' last trials (and then runs its share of the final re-runs, if the sweep
# has final_seeds). The comparison figure and table are left to you, once, on the login node:
#   python -m optimizers_for_a_small_gpt.compare --sweep configs/sweeps/<name>.yaml
srun python sweep.py --config "$SWEEP" --workers 1 --threads "${SLURM_CPUS_PER_TASK:-1}" --no-compare \
    ${STORAGE[@]+"${STORAGE[@]}"} "$@"
