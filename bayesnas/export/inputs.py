"""What an exported model takes: images as users have them, normalised inside.

``ExportedModel`` takes ``[N, C, H, W]`` uint8 in 0..255 or float in [0, 1] and refuses floats
outside [0, 1]; ONNX cannot refuse an input, so its export (``UnitRangeModel``) rescales them.
"""

from __future__ import annotations

import torch
from torch import nn

RANGE_SLACK = 1e-3  # float images may exceed [0, 1] by rounding, not by a 0..255 scale


class ExportedModel(nn.Module):
    """An exported sub-network that takes images as users have them: ``[N, C, H, W]``, uint8
    in 0..255 or float in [0, 1]. It normalises them with the training data's per-channel mean
    and std (uint8 exactly as the search did) and returns logits. ``.net`` is the bare
    sub-network, which takes normalised images."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.slack = RANGE_SLACK
        self.mean: torch.Tensor
        self.std: torch.Tensor
        for name, values in (("mean", mean), ("std", std)):  # not in the state dict
            tensor = torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)
            self.register_buffer(name, tensor, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:  # as bayesnas.data.normalize: bit-identical logits
            x = (images.float() - self.mean * 255.0) / (self.std * 255.0)
        else:
            x = (self.unit_range(images) - self.mean) / self.std
        return self.net(x)

    def unit_range(self, images: torch.Tensor) -> torch.Tensor:
        """Float images as given, refused unless in [0, 1]: 0..255 floats would otherwise give
        confident nonsense (a quarter of the accuracy)."""
        low, high = torch.aminmax(images)  # one pass over the images, one read to the host
        if bool((high > 1.0 + self.slack) | (low < -self.slack)):
            raise ValueError(
                "float images must lie in [0, 1]: divide 0..255 images by 255, or pass them "
                "as uint8"
            )
        return images


class UnitRangeModel(ExportedModel):
    """The ONNX export's model: ONNX cannot refuse an input, so a float image with any value
    above 1 is taken as 0..255 and divided by 255 (per image), which its metadata says."""

    def unit_range(self, images: torch.Tensor) -> torch.Tensor:
        peak = images.flatten(1).amax(1).view(-1, 1, 1, 1)
        return torch.where(peak > 1.0 + self.slack, images / 255.0, images)


def for_onnx(model: nn.Module) -> nn.Module:
    """``model`` (an ExportedModel) with ONNX's input rule: rescale 0..255 floats, not refuse."""
    if not isinstance(model, ExportedModel):
        return model
    mean, std = model.mean.flatten().tolist(), model.std.flatten().tolist()
    return UnitRangeModel(model.net, mean, std).eval()
