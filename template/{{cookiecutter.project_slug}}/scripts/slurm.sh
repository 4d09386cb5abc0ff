#!/bin/bash
# Train on several GPU nodes of a SLURM cluster with DDP.
#
#   sbatch scripts/slurm.sh configs/{{ {'vision': 'vision_cifar10', 'all': 'vision_cifar10', 'language': 'language_shakespeare_char', 'diffusion': 'diffusion_mnist', 'tabular': 'tabular', 'objective': 'objective'}[cookiecutter.problem_family] }}.yaml [more train.py arguments]
#
# Before the first job:
#   1. Install the project on the cluster (uv sync, or pip install -e . in a virtual environment)
#      and download datasets on the login node (compute nodes often have no internet):
#      python train.py fit --config <experiment> --config configs/trainer/debug.yaml
#   2. Set the #SBATCH lines below for your cluster: partition, account, time limit.
#   3. Keep --nodes, --ntasks-per-node and --gres=gpu:N equal to num_nodes and devices in
#      configs/trainer/slurm.yaml (the script passes --nodes on; devices must match by hand).
#
# Lightning detects SLURM and sets up the processes itself: srun starts one task per GPU and
# each task learns its rank from SLURM's environment. Logs go to slurm-<job id>.out; the run
# itself to runs/ as usual. At the time limit (the --signal line below) Lightning saves a
# checkpoint into the run's folder and requeues the job; the requeued job continues the same run
# in the same folder (see src/{{ cookiecutter.package_name }}/run/folders.py). A job that ended otherwise
# (scancel, a crash) continues with: sbatch scripts/slurm.sh <the same config> --ckpt_path last
#
#SBATCH --job-name=course-project
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --mem=0
#SBATCH --time=04:00:00
#SBATCH --signal=SIGUSR1@90
# (--signal gives Lightning 90 seconds' warning before the time limit, to save a checkpoint)

set -euo pipefail
CONFIG=${1:?usage: sbatch scripts/slurm.sh configs/<experiment>.yaml [train.py arguments]}
shift

cd "${SLURM_SUBMIT_DIR:-.}"
if [ -d .venv ]; then source .venv/bin/activate; fi

srun python train.py fit --config "$CONFIG" --config configs/trainer/slurm.yaml \
    --trainer.num_nodes "${SLURM_JOB_NUM_NODES:-1}" "$@"
