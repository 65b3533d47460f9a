"""Where training runs: ``cpu``, ``cuda`` or ``cuda:N``, checked before any work starts."""

from __future__ import annotations

import re

from ...errors import FaceIDError


class DeviceUnavailableError(FaceIDError):
    code = "device_unavailable"
    http_status = 503


def resolve_device(device: str) -> str:
    """``device`` if torch can run on it; :class:`DeviceUnavailableError` otherwise."""
    import torch  # optional, torch: the learn extra

    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise DeviceUnavailableError(f"device must be cpu, cuda or cuda:N, not {device!r}")
    if device == "cpu":
        return device
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceUnavailableError(
            f"--device {device} asked for, but torch.cuda is not available (torch "
            f"{torch.__version__}, {build}); use --device cpu or install a CUDA build of torch"
        )
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise DeviceUnavailableError(
            f"--device {device} asked for, but torch sees {torch.cuda.device_count()} GPU(s)"
        )
    return device
