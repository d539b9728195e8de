"""`--device`: checked before anything loads, so a wrong name or a missing GPU is one line."""
from __future__ import annotations

from .errors import UserError


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
