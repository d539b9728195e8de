"""Devices and arithmetic: `--device` checked before anything loads (a wrong name or a missing GPU
is one line), the torch device a Tagger runs on, and what `--precision auto` means there."""
from __future__ import annotations

from .errors import UserError

# The encoder's arithmetic: fp32, or bf16 under autocast (matrix products in bf16, normalisation and
# softmax in fp32). "auto" picks bf16 where the hardware does it natively — a CUDA GPU that supports
# it, a CPU with AVX-512 BF16 or AMX — and fp32 elsewhere.
PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(device: str | None):
    """The torch device for `device` (None: CUDA when there is one)."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_precision(precision: str, device) -> str:
    """fp32 or bf16 for a torch device (or a device name), "auto" resolved for its hardware."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if kind == "cpu" and cpu_has_bf16() else "fp32"


def cpu_has_bf16() -> bool:
    """AVX-512 BF16 or AMX in the CPU flags (Linux; elsewhere unknown, so no)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def check_device(device: str | None) -> None:
    """One line, instead of torch's traceback when the model moves there, for a device that is
    not a device name or that this machine does not have."""
    if device is None:
        return
    import torch

    try:
        wanted = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device}: not a device name (cpu, cuda, cuda:1 …)") from None
    if wanted.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise UserError(f"--device {device}: CUDA is not available here (torch {torch.__version__}, {build})")
        if wanted.index is not None and wanted.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
