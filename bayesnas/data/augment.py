"""On-device augmentation of uint8 image batches (crop, flip, cutout) and normalisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from bayesnas.errors import UserError

DEFAULT_AUGMENTATION: dict[str, dict[str, int | bool]] = {
    "cifar10": {"pad": 4, "flip": True, "cutout": 16},
    "cifar100": {"pad": 4, "flip": True, "cutout": 16},
    "fashion-mnist": {"pad": 2, "flip": True, "cutout": 0},
    "mnist": {"pad": 2, "flip": False, "cutout": 0},
    "imagenet": {"pad": 0, "flip": True, "cutout": 0},
    "folder": {"pad": 0, "flip": True, "cutout": 0},
}


def per_channel(values: Sequence[float] | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Shape per-channel statistics for broadcasting over [B, C, H, W] on `device`."""
    return torch.as_tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)


def normalize(
    images: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Turn uint8 images into float32 standardised per channel, without augmentation (eval)."""
    shift = per_channel(mean, images.device) * 255.0
    scale = per_channel(std, images.device) * 255.0
    return (images.float() - shift) / scale


def cutout_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a `size` x `size` square around a random centre in each image, clipped at borders."""
    batch, _, height, width = images.shape
    device = images.device
    top = torch.randint(0, height, (batch, 1), device=device) - size // 2
    left = torch.randint(0, width, (batch, 1), device=device) - size // 2
    ys, xs = torch.arange(height, device=device), torch.arange(width, device=device)
    rows = (ys >= top) & (ys < top + size)
    cols = (xs >= left) & (xs < left + size)
    return images.masked_fill(rows[:, None, :, None] & cols[:, None, None, :], 0.0)


def augment(
    images: torch.Tensor,
    *,
    pad: int,
    flip: bool,
    cutout: int,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
) -> torch.Tensor:
    """Randomly crop, flip and cut out a uint8 batch on its own device, then normalise it."""
    batch, channels, height, width = images.shape
    device = images.device
    rows = torch.arange(height, device=device).expand(batch, height)
    cols = torch.arange(width, device=device).expand(batch, width)
    if pad:
        images = F.pad(images, (pad, pad, pad, pad))
        rows = rows + torch.randint(0, 2 * pad + 1, (batch, 1), device=device)
        cols = cols + torch.randint(0, 2 * pad + 1, (batch, 1), device=device)
    if flip:
        cols = torch.where(torch.rand(batch, 1, device=device) < 0.5, cols.flip(1), cols)
    if pad or flip:
        images = images[
            torch.arange(batch, device=device).view(batch, 1, 1, 1),
            torch.arange(channels, device=device).view(1, channels, 1, 1),
            rows.view(batch, 1, height, 1),
            cols.view(batch, 1, 1, width),
        ]
    out = normalize(images, mean, std)
    return cutout_square(out, cutout) if cutout else out


def checked_augmentation(settings: Mapping[str, int | bool] | None) -> dict[str, int | bool] | None:
    """Validate augmentation settings (keys pad, flip, cutout; missing ones are off)."""
    if settings is None:
        return None
    unknown = set(settings) - {"pad", "flip", "cutout"}
    if unknown:
        raise UserError(f"unknown augmentation keys {sorted(unknown)}; use pad, flip and cutout")
    checked = {"pad": 0, "flip": False, "cutout": 0, **settings}
    for key in ("pad", "cutout"):
        if isinstance(checked[key], bool) or not isinstance(checked[key], int) or checked[key] < 0:
            raise UserError(f"augmentation {key} must be a whole number >= 0, not {checked[key]!r}")
    if not isinstance(checked["flip"], bool):
        raise UserError(f"augmentation flip must be true or false, not {checked['flip']!r}")
    return checked
