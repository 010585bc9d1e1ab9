"""q fitted on held-out batches (``--gate-data held-out``): after the warm-up, every weight step
on a search-train batch (q's gradient dropped) is followed by q's own step on a batch of
validation images that neither the weights nor the ranking see, the alternation of DARTS,
DrNAS and beta-DARTS, with Pyro's ELBO (Eq. 15's loss) as both steps' objective."""

from __future__ import annotations

import torch

from bayesnas.data import Data
from bayesnas.search import parallel
from bayesnas.search.setup import SearchSetup

HELD_OUT_ORDER = 104729  # seed offset of the held-out batch order (not the training order's)


def gate_step(s: SearchSetup, data: Data, index: int) -> None:
    """q's step on held-out batch ``index`` (this rank's shard), in an order fixed by the seed
    alone so that a resume draws the same batches; the weights' gradients are dropped."""
    c = s.config
    epoch, position = divmod(index, data.steps_per_epoch(c.batch_size))
    shard = (s.dist.rank, s.dist.world)
    batches = data.train_batches(c.batch_size, epoch, c.seed + HELD_OUT_ORDER, position, shard)
    images, labels = next(iter(batches))
    with torch.autocast(s.device.type, torch.bfloat16, enabled=s.cuda):
        loss = s.program.loss(images, labels)
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for weight in s.weights:
        weight.grad = None
    if s.dist.active:
        gates = [s.program.guide.gate_logits]
        parallel.average_gradients(s.dist, gates, loss.detach().reshape(1))
    s.optimizer.step()
