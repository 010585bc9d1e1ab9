"""Fine-tune scoring: steps that lower the training loss, the super-network left untouched,
the same result for the same candidate."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bayesnas.selection.finetune import FineTune, fine_tuned
from bayesnas.spaces import create_space
from bayesnas.spaces.nb201.cell import OPS, from_string

CELL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def test_fine_tuning_fits_the_batches_and_leaves_the_supernet_alone() -> None:
    torch.manual_seed(0)
    net = create_space("nb201", channels=4, cells=1, num_classes=3)
    arch = F.one_hot(torch.tensor(from_string(CELL)), len(OPS)).float()
    images, labels = torch.randn(32, 3, 16, 16), torch.randint(0, 3, (32,))

    def batches():
        return iter([(images, labels)])

    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    with torch.no_grad():
        start = F.cross_entropy(net.forward_architecture(images, arch), labels)
    tuned = fine_tuned(net, arch, batches, FineTune(steps=60, lr=0.05))
    again = fine_tuned(net, arch, batches, FineTune(steps=60, lr=0.05))
    for a, b in zip(tuned.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with torch.no_grad():
        end = F.cross_entropy(tuned(images), labels)  # eval mode: the tuned statistics
    assert end < 0.5 * start
