"""Where tensors live: CUDA when present (the `full` and `paper` profiles are meant for a GPU),
else the CPU.  bf16 autocast works on both."""
from __future__ import annotations

import contextlib
import os

import torch


def default_device() -> torch.device:
    """``$BOOK_DEVICE`` if set (e.g. ``cpu``), else CUDA when available, else CPU."""
    name = os.environ.get("BOOK_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on `device` (a no-op context when disabled)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def model_device(model) -> torch.device:
    return next(model.parameters()).device
