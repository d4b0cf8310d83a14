"""sketch-rnn networks (Ha & Eck 2017): a bidirectional LSTM encoder over stroke-5 sequences and
an LSTM decoder whose every step outputs a mixture of bivariate Gaussians over the next pen
offset (dx, dy) and logits of the three pen states.

Stroke-5 rows are (dx, dy, p1, p2, p3): the offset from the previous point, then one-hot pen
state after it (p1 = pen stays down, p2 = pen lifts, p3 = the drawing has ended). A batch is
padded after each sequence's `lengths` real points with (0, 0, 0, 0, 1) rows.

The encoder reads only the real points of each sequence, as a packed bidirectional LSTM does,
but without packing: the backward direction runs a forward LSTM over each sequence reversed
within its length (a gather), so the same code trains and exports to ONNX.

The decoder has two ways to run: the whole teacher-forced sequence at once (training), and one
step at a time (`Decoder.step`, used for drawing and exported as the `decoder_step` graph). Both
compute the same function; with the plain LSTM the step is written out from nn.LSTM's weights.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

STROKE_DIM = 5
START_POINT = (0.0, 0.0, 1.0, 0.0, 0.0)  # the decoder's first input, prepended by the model


class Mixture(NamedTuple):
    """One step's (or every step's) output distribution: tensors (..., M) and pen logits (..., 3)."""

    pi: torch.Tensor  # mixture weight logits
    mu_x: torch.Tensor
    mu_y: torch.Tensor
    sigma_x: torch.Tensor  # > 0 (exp)
    sigma_y: torch.Tensor
    rho: torch.Tensor  # in (-1, 1) (tanh)
    pen: torch.Tensor  # pen state logits (..., 3)


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence of x (N, T, D) with its first `lengths` rows reversed and its padding left
    in place, so a forward LSTM over the result reads the real points backwards."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    n = lengths.to(x.device)[:, None]
    index = torch.where(t < n, n - 1 - t, t)
    return torch.gather(x, 1, index[:, :, None].expand(-1, -1, x.shape[2]))


def last_real(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Rows outputs[i, lengths[i] - 1] of (N, T, H): the state after each sequence's last real point."""
    index = (lengths.to(outputs.device) - 1).clamp(min=0)
    return torch.gather(outputs, 1, index[:, None, None].expand(-1, 1, outputs.shape[2]))[:, 0]


class StrokeEncoder(nn.Module):
    """strokes (N, T, 5), lengths int64 (N,) -> mu, presig (N, latent_dim); sigma = exp(presig / 2)."""

    def __init__(self, hidden: int, latent_dim: int) -> None:
        super().__init__()
        self.forward_rnn = nn.LSTM(STROKE_DIM, hidden, batch_first=True)
        self.backward_rnn = nn.LSTM(STROKE_DIM, hidden, batch_first=True)
        self.head = nn.Linear(2 * hidden, 2 * latent_dim)

    def forward(self, strokes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = lengths.clamp(min=1, max=strokes.shape[1])
        forward_out, _ = self.forward_rnn(strokes)
        backward_out, _ = self.backward_rnn(reverse_within_lengths(strokes, lengths))
        h = torch.cat([last_real(forward_out, lengths), last_real(backward_out, lengths)], dim=1)
        mu, presig = self.head(h).chunk(2, dim=1)
        return mu, presig


class LSTMStepCell(nn.Module):
    """An LSTM cell written out step by step, with optional layer normalisation (Ba et al. 2016,
    per gate and on the cell, as magenta's LayerNormLSTMCell) and recurrent dropout on the cell
    update (Semeniuta et al. 2016), `keep` = the probability of keeping a unit."""

    def __init__(self, input_size: int, hidden: int, layer_norm: bool, keep: float = 1.0,
                 forget_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden, self.layer_norm, self.keep = hidden, layer_norm, keep
        self.gates = nn.Linear(input_size + hidden, 4 * hidden, bias=not layer_norm)
        self.forget_bias = forget_bias
        if layer_norm:
            self.gate_gain = nn.Parameter(torch.ones(4, hidden))
            self.gate_bias = nn.Parameter(torch.zeros(4, hidden))
            self.cell_norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gates = self.gates(torch.cat([x, h], dim=1)).view(-1, 4, self.hidden)
        if self.layer_norm:
            gates = nn.functional.layer_norm(gates, (self.hidden,)) * self.gate_gain + self.gate_bias
        i, g, f, o = gates.unbind(1)
        update = torch.tanh(g)
        if self.training and self.keep < 1.0:
            update = nn.functional.dropout(update, 1.0 - self.keep)
        c = c * torch.sigmoid(f + self.forget_bias) + torch.sigmoid(i) * update
        h = torch.tanh(self.cell_norm(c) if self.layer_norm else c) * torch.sigmoid(o)
        return h, c


class StrokeDecoder(nn.Module):
    """(previous point, z) at each step -> Mixture of the next point; initial state tanh(W z + b).

    `latent_dim` 0 is the unconditional decoder: no z, a zero initial state. `cell` is "lstm"
    (nn.LSTM, fused over the sequence in training) or "step" (LSTMStepCell: layer norm and/or
    recurrent dropout, a Python loop over the steps)."""

    def __init__(self, hidden: int, latent_dim: int, mixtures: int, layer_norm: bool = False,
                 keep: float = 1.0) -> None:
        super().__init__()
        self.hidden, self.latent_dim, self.mixtures = hidden, latent_dim, mixtures
        size = STROKE_DIM + latent_dim
        self.stepwise = layer_norm or keep < 1.0
        if self.stepwise:
            self.cell = LSTMStepCell(size, hidden, layer_norm, keep)
        else:
            self.rnn = nn.LSTM(size, hidden, batch_first=True)
        if latent_dim:
            self.init = nn.Linear(latent_dim, 2 * hidden)
            nn.init.normal_(self.init.weight, std=0.001)  # magenta's init_w='gaussian', weight_start=0.001
            nn.init.zeros_(self.init.bias)
        self.head = nn.Linear(hidden, 6 * mixtures + 3)

    def initial_state(self, z: torch.Tensor | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, c) (N, hidden): tanh(W z + b), or zeros for the unconditional decoder."""
        if not self.latent_dim:
            device = self.head.weight.device
            zeros = torch.zeros(n, self.hidden, device=device)
            return zeros, zeros
        assert z is not None
        h, c = torch.tanh(self.init(z)).chunk(2, dim=1)
        return h, c

    def mixture(self, out: torch.Tensor) -> Mixture:
        """The head's output (..., hidden) as a Mixture."""
        m = self.mixtures
        params = self.head(out)
        pi, mu_x, mu_y, log_sx, log_sy, rho = params[..., :6 * m].split(m, dim=-1)
        return Mixture(pi, mu_x, mu_y, torch.exp(log_sx), torch.exp(log_sy), torch.tanh(rho), params[..., 6 * m:])

    def _inputs(self, points: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        if not self.latent_dim:
            return points
        assert z is not None
        zs = z[:, None, :].expand(-1, points.shape[1], -1) if points.dim() == 3 else z
        return torch.cat([points, zs], dim=-1)

    def forward(self, inputs: torch.Tensor, z: torch.Tensor | None = None) -> Mixture:
        """Teacher forcing: inputs (N, T, 5) = start point then the targets shifted by one -> Mixture (N, T, ...)."""
        h, c = self.initial_state(z, inputs.shape[0])
        x = self._inputs(inputs, z)
        if not self.stepwise:
            out, _ = self.rnn(x, (h[None].contiguous(), c[None].contiguous()))
        else:
            outs = []
            for t in range(x.shape[1]):
                h, c = self.cell(x[:, t], h, c)
                outs.append(h)
            out = torch.stack(outs, dim=1)
        return self.mixture(out)

    def step(self, point: torch.Tensor, z: torch.Tensor | None, h: torch.Tensor,
             c: torch.Tensor) -> tuple[Mixture, torch.Tensor, torch.Tensor]:
        """One step: the previous point (N, 5) and state (N, hidden) each -> (Mixture, h, c)."""
        x = self._inputs(point, z)
        if self.stepwise:
            h, c = self.cell(x, h, c)
        else:
            rnn = self.rnn
            gates = x @ rnn.weight_ih_l0.t() + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.t() + rnn.bias_hh_l0
            i, f, g, o = gates.chunk(4, dim=1)  # nn.LSTM's gate order
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.mixture(h), h, c


class SketchRNNModel(nn.Module):
    """Encoder and decoder in one module, so one forward covers a training step (DDP-friendly)."""

    def __init__(self, enc_hidden: int, dec_hidden: int, latent_dim: int, mixtures: int,
                 layer_norm: bool = False, keep: float = 1.0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = StrokeEncoder(enc_hidden, latent_dim) if latent_dim else None
        self.decoder = StrokeDecoder(dec_hidden, latent_dim, mixtures, layer_norm, keep)

    def forward(self, strokes: torch.Tensor, lengths: torch.Tensor,
                eps: torch.Tensor | None = None) -> tuple[Mixture, torch.Tensor | None, torch.Tensor | None]:
        """Teacher-forced pass over strokes (N, T, 5): (Mixture (N, T, ...), mu, presig); mu and
        presig are None for the unconditional model. z = mu + eps * exp(presig / 2)."""
        mu = presig = z = None
        if self.encoder is not None:
            mu, presig = self.encoder(strokes, lengths)
            z = mu + (eps if eps is not None else torch.randn_like(mu)) * torch.exp(0.5 * presig)
        start = strokes.new_tensor(START_POINT).expand(strokes.shape[0], 1, STROKE_DIM)
        inputs = torch.cat([start, strokes[:, :-1]], dim=1)
        return self.decoder(inputs, z), mu, presig


# --- what the exporter writes ---------------------------------------------------------------------

class EncoderGraph(nn.Module):
    """strokes (N, T, 5), lengths int64 (N,) -> mu, logvar (N, latent_dim); logvar is the presig."""

    def __init__(self, encoder: StrokeEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, strokes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(strokes, lengths)


class InitStateGraph(nn.Module):
    """z (N, latent_dim) -> h, c (N, hidden): the decoder's initial state, tanh(W z + b)."""

    def __init__(self, decoder: StrokeDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder.initial_state(z, z.shape[0])


class DecoderStepGraph(nn.Module):
    """point (N, 5), z (N, latent_dim), h, c (N, hidden) -> pi, mu_x, mu_y, sigma_x, sigma_y, rho
    (N, M), pen_logits (N, 3), h_out, c_out (N, hidden)."""

    def __init__(self, decoder: StrokeDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, point: torch.Tensor, z: torch.Tensor, h: torch.Tensor,
                c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mix, h, c = self.decoder.step(point, z, h, c)
        return (*mix, h, c)


class UnconditionalStepGraph(nn.Module):
    """The unconditional decoder's step: point (N, 5), h, c (N, hidden) -> as DecoderStepGraph."""

    def __init__(self, decoder: StrokeDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, point: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mix, h, c = self.decoder.step(point, None, h, c)
        return (*mix, h, c)
