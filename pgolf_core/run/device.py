"""The device a run asks for, checked before any work: an impossible device is an error, and a
CUDA request on a machine without CUDA never falls back to the CPU.

Every run is checked, even one whose experts never touch a device (the n-grams): a command that
names a device and succeeds must have been able to use it. ``cpu`` needs nothing; any other
device needs torch (imported here only for such a request, so the core stays light).
"""

from __future__ import annotations

from ..errors import UsageError

KNOWN = "cpu, cuda, cuda:N or mps"


def check_device(device) -> str:
    """``device`` as given, once it names a device of this machine; a one-line ``UsageError`` if not."""
    text = str(device).strip()
    if text in ("cpu", "cpu:0"):
        return text
    try:
        import torch
    except ImportError:
        raise UsageError(f"device {text!r}: only cpu works without torch (pip install torch)") from None
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"device {text!r} is not a device; give {KNOWN}") from None
    if dev.type == "cpu":
        return text
    if dev.type == "cuda":
        _check_cuda(torch, dev, text)
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(f"device {text!r} requested but MPS is not available on this machine")
    else:
        raise UsageError(f"device {text!r}: pgolf-core runs on {KNOWN}, not {dev.type}")
    return text


def _check_cuda(torch, dev, text: str) -> None:
    if not torch.cuda.is_available():
        build = "a CPU-only build of torch" if torch.version.cuda is None else f"torch built for CUDA {torch.version.cuda}"
        raise UsageError(f"device {text!r} requested but CUDA is not available ({build}, "
                         f"{torch.cuda.device_count()} GPUs visible); give --device cpu to run on the CPU")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise UsageError(f"device {text!r} requested but this machine has {count} CUDA device(s): cuda:0 .. cuda:{count - 1}")
