"""Exponential moving average of a network's weights (Karras et al. 2018; Yazıcı et al. 2019).

A GAN generator's weights oscillate around a good solution; their running average draws
cleaner samples than any single iterate. The average is kept in a copy of the network that is
never trained, and it is what grids show and what the exporter exports.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Shadow copy of ``module`` updated as ``shadow = decay * shadow + (1 - decay) * live``.

    ``decay`` warms up as ``min(decay, (1 + step) / (10 + step))`` so early averages do not
    hold on to the random initialisation. Buffers (BatchNorm running statistics) are copied.
    """

    def __init__(self, module: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for s, p in zip(self.shadow.parameters(), module.parameters()):
            s.lerp_(p.detach(), 1.0 - d)
        for s, b in zip(self.shadow.buffers(), module.buffers()):
            s.copy_(b)

    def state_dict(self) -> dict:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.shadow.load_state_dict(state)
