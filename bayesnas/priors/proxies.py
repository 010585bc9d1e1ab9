"""Training-free proxies: a score of a (mixture of) network(s) at initialisation, no training.

Each proxy is one function ``proxy(forward, net, images, mixture) -> float`` registered in
``PROXIES``; ``forward(images)`` runs the network (a super-network at some op weights, or one
sub-network), ``net`` is the module whose activations may be hooked, ``mixture`` says that ops
left out of the forward belong to the network (removed from a mixture) rather than not existing.
Adding a proxy (synflow, a vote) is one function and one line.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from torch import nn

from bayesnas.spaces.layers import ReLUConvBN

Forward = Callable[[torch.Tensor], torch.Tensor]
Proxy = Callable[[Forward, nn.Module, torch.Tensor, bool], float]

RECTIFIED = (ReLUConvBN, nn.ReLU)  # modules whose input passes a ReLU first (NB201, DARTS ops)
_input_sizes: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()


@torch.no_grad()
def naswot(forward: Forward, net: nn.Module, images: torch.Tensor, mixture: bool = False) -> float:
    """NASWOT (Mellor et al. 2021): log-determinant of the summed Hamming-similarity kernels of
    the binary codes (pre-activation > 0) of every ReLU's input over one batch.

    With ``mixture``, an op that the mixture leaves out (weight 0) is not computed here, but it
    counts as it does in the Zero-Cost-PT reference code, which runs it on a zeroed input: a
    constant code, which agrees with itself in every unit. Its size is remembered from a forward
    that computed it. Without, the ops not computed are not part of the network.
    """
    batch = images.shape[0]
    kernel = torch.zeros(batch, batch, dtype=torch.float64)
    called: set[nn.Module] = set()

    def code(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        if x.shape[0] != batch:
            return
        called.add(module)
        _input_sizes[module] = x[0].numel()
        signs = (x.reshape(batch, -1) > 0).float() * 2 - 1
        # codes agreeing in m of n units: signs @ signs.T = 2m - n (exact in float32: n < 2^24)
        agree = (signs @ signs.T + signs.shape[1]) / 2
        nonlocal kernel
        kernel += agree.double().cpu()

    modules = [m for m in net.modules() if isinstance(m, RECTIFIED)]
    handles = [m.register_forward_pre_hook(code) for m in modules]
    try:
        forward(images)
    finally:
        for handle in handles:
            handle.remove()
    if mixture:
        kernel += sum(_input_sizes.get(m, 0) for m in modules if m not in called)
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else float("-inf")


PROXIES: dict[str, Proxy] = {"naswot": naswot}


def get_proxy(name: str) -> Proxy:
    """The proxy registered as ``name`` (a KeyError names the known ones)."""
    if name not in PROXIES:
        raise KeyError(f"unknown proxy {name!r}; known: {', '.join(PROXIES)}")
    return PROXIES[name]
