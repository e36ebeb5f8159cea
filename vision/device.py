"""Where torch work runs: one check of a ``device`` argument, before any work.

``torch.device("banana")`` raises a RuntimeError deep inside torch, and ``"cuda"`` on a machine
without CUDA fails only when the first tensor moves, after the weights and images were loaded.
:func:`resolve_device` refuses both at once with an :class:`hiergrammar.InputError` naming the
argument, and picks CUDA when available for ``None``.

Examples
--------
>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_device("banana")  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
hiergrammar.validation.InputError: device='banana' is not a device: use cpu, cuda, cuda:N ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hiergrammar.validation import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device"]

_HINT = "use cpu, cuda, cuda:N or mps"


def _available(kind: str) -> tuple[bool, int]:
    """Whether devices of ``kind`` can be used here, and how many are indexed."""
    import torch

    if kind == "cpu":
        return True, 1
    if kind == "cuda":
        ok = torch.cuda.is_available()
        return ok, torch.cuda.device_count() if ok else 0
    if kind == "mps":
        ok = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
        return ok, 1 if ok else 0
    if kind == "xpu":
        ok = hasattr(torch, "xpu") and torch.xpu.is_available()
        return ok, torch.xpu.device_count() if ok else 0
    return False, 0


def resolve_device(device: Any = None, name: str = "device") -> torch.device:
    """``device`` as a usable :class:`torch.device`, else an :class:`~hiergrammar.InputError`.

    Parameters
    ----------
    device : ``None`` (CUDA if available, else CPU), a string such as ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ``"mps"``, or a :class:`torch.device`.
    name : the argument's name in messages (``"--device"`` for the command line).

    Returns
    -------
    torch.device

    Raises
    ------
    InputError
        For a string that names no device, a device type this machine lacks (e.g. ``cuda``
        without CUDA) or an index beyond the devices present.

    Examples
    --------
    >>> resolve_device(None).type in ("cpu", "cuda")
    True
    >>> resolve_device("cuda:99")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: device='cuda:99' ...
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, str):
        try:
            parsed = torch.device(device.strip())
        except (RuntimeError, ValueError):
            raise InputError(f"{name}={device!r} is not a device: {_HINT}") from None
    elif isinstance(device, torch.device):
        parsed = device
    else:
        raise InputError(f"{name} must be a string or a torch.device, got {device!r}")
    ok, count = _available(parsed.type)
    if parsed.type not in ("cpu", "cuda", "mps", "xpu"):
        raise InputError(f"{name}={str(parsed)!r} cannot run this computation: {_HINT}")
    if not ok:
        detail = (
            f" (this torch {torch.__version__} was built without CUDA)"
            if parsed.type == "cuda" and torch.version.cuda is None
            else ""
        )
        raise InputError(
            f"{name}={str(parsed)!r} is not available on this machine{detail}: use cpu"
        )
    if parsed.index is not None and parsed.index >= count:
        raise InputError(
            f"{name}={str(parsed)!r} violates index < {count} ({count} {parsed.type} device(s) "
            "present)"
        )
    return parsed
