"""What the trainer's settings ask of the machine, checked before anything loads.

    uv run python train.py fit --config configs/trainer/gpu.yaml     # on a machine without a GPU:
    error: configs/trainer/gpu.yaml asks for a GPU (accelerator: gpu) and this machine has none: ...

A GPU preset on a laptop, fp16 on a CPU: each ends with one line that says what to run instead
(cli.py calls check_hardware before the trainer is built), and bf16 falls back to fp16 on GPUs
without it (fall_back_to_fp16).
"""

import torch

from ..config_errors import ConfigError


def has_gpu() -> bool:
    """Whether Lightning's accelerator "gpu" finds one here: CUDA, or Apple's MPS."""
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def check_hardware(config) -> None:
    """Stop with one line when the trainer asks for a GPU the machine lacks, or for fp16 on a CPU
    (where Lightning would quietly train in bf16 under a run named after fp16)."""
    accelerator, precision, gpu = str(config.trainer.accelerator), str(config.trainer.precision), has_gpu()
    presets = [str(path) for path in config.get("config") or [] if "trainer" in str(path).replace("\\", "/").split("/")]
    source = f"{presets[-1]} asks" if presets else "the trainer settings ask"
    if accelerator in ("gpu", "cuda", "mps") and not gpu:
        raise ConfigError(f"{source} for a GPU (accelerator: {accelerator}) and this machine has none: "
                          "train on the CPU with --config configs/trainer/cpu.yaml instead (or run where a GPU is)")
    if (accelerator == "cpu" or (accelerator == "auto" and not gpu)) and precision in ("16", "16-mixed", "16-true"):
        raise ConfigError(f"precision {precision} (fp16) needs a GPU: on the CPU use --trainer.precision bf16-mixed "
                          "or 32-true")


def fall_back_to_fp16(trainer_config) -> None:
    """bf16 needs an Ampere or newer GPU; older ones (Colab's T4) train in fp16 instead."""
    precision = str(trainer_config.precision)
    if precision.startswith("bf16") and trainer_config.accelerator in ("gpu", "cuda", "auto"):
        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported(including_emulation=False):
            trainer_config.precision = precision.replace("bf16", "16")
            print(f"This GPU has no bf16: training with precision {trainer_config.precision} instead.")
