"""What the channel-gate recipe relies on: Eq. 15's KL moves a group whose weights carry no
signal towards dropping, while groups the likelihood needs stay kept."""

from __future__ import annotations

import torch

from bayesnas.config import SearchConfig
from bayesnas.program import build_program


def test_a_group_without_signal_drifts_to_a_larger_drop_rate() -> None:
    torch.manual_seed(0)
    config = SearchConfig(
        space="resnet", space_options={"width": 4, "blocks": 1}, init_drop=0.1, prior_l2=5.0
    )
    program = build_program(config, num_classes=2, in_channels=1, num_data=2560)
    net = program.net
    branch = net.blocks[0].branches[0]  # s1.b1.br1: its output BN is frozen at zero, so the
    with torch.no_grad():  # weights of its two convs (gate groups 0 and 1) carry no signal
        branch.bn2.weight.zero_()
        branch.bn2.bias.zero_()
    branch.bn2.requires_grad_(False)
    dead = [0, 1]
    images = torch.randn(256, 1, 8, 8)
    labels = (images.mean((1, 2, 3)) > 0).long()  # learnable from the image
    weights = [p for p in net.parameters() if p.requires_grad]
    optimisers = (
        torch.optim.SGD(weights, lr=0.05, momentum=0.9),
        torch.optim.SGD([program.guide.gate_logits], lr=1.0, momentum=0.9),
    )
    start = torch.sigmoid(-program.guide.gate_logits.detach()).clone()
    for step in range(150):
        batch = slice(32 * (step % 8), 32 * (step % 8 + 1))
        for optimiser in optimisers:
            optimiser.zero_grad()
        program.loss(images[batch], labels[batch]).backward()
        for optimiser in optimisers:
            optimiser.step()
    drop = torch.sigmoid(-program.guide.gate_logits.detach())
    assert bool((drop[dead] > start[dead] + 0.05).all())  # drifted towards dropping
    assert drop[dead].mean() > 2 * drop[2:].mean()  # the groups the likelihood uses stay kept
