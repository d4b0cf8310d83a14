"""sketch-rnn family (Ha & Eck 2017, "A Neural Representation of Sketch Drawings"): a recurrent
VAE that draws with pen strokes.

Data: batches of stroke-5 sequences (``Batch.strokes`` float32 (B, T, 5), rows (dx, dy, p1,
p2, p3) with dx, dy divided by the data's scale factor; padded after ``Batch.lengths`` real
points with (0, 0, 0, 0, 1) rows). The model prepends the start point (0, 0, 1, 0, 0).

Objective, as the paper and magenta's sketch_rnn (model.py) have it:

* reconstruction = L_s + L_p: the offsets' mixture NLL over each sequence's real points plus
  the pen states' cross-entropy, both divided by T (trainer.losses). ``pen_loss`` "all_steps"
  counts the pen over all T steps, as the paper; "to_end" (the default) over each drawing's
  points and its end state, so the padding after the end state adds nothing and each batch is
  cut after its longest drawing's end state (``trim_to_end``): the same loss and gradients in
  fewer LSTM steps, the more so with batches of similar lengths (``length_buckets``, the loop);
* KL per latent dimension, not pushed below ``kl_min`` (the KL tolerance), weighted by
  kl_weight - (kl_weight - kl_weight_start) * kl_decay_rate ** step;
* Adam with the learning rate (lr - min_lr) * lr_decay ** step + min_lr, every gradient
  element clipped to [-grad_clip_value, grad_clip_value];
* augmentation: random scale of each sketch's dx and dy (``scale_augment``) and, optionally,
  random dropping of inner points of pen-down runs (``drop_points``, magenta's augment_strokes).

``--unconditional`` trains the decoder alone (no encoder, no z; it starts from a zero state).

Export (``export_graphs``), the sampling loop left to the service:

* ``encoder``: ``strokes`` float32 (N, T, 5), ``lengths`` int64 (N,) -> ``mu``, ``logvar``
  (N, latent_dim) (logvar is the paper's presig: sigma = exp(logvar / 2));
* ``init_state``: ``z`` (N, latent_dim) -> ``h``, ``c`` (N, dec_rnn), the decoder's initial
  state tanh(W z + b);
* ``decoder_step``: ``point`` (N, 5) (the previous point; (0, 0, 1, 0, 0) first), ``z``, ``h``,
  ``c`` -> ``pi`` (mixture logits), ``mu_x``, ``mu_y``, ``sigma_x``, ``sigma_y``, ``rho`` (N, M),
  ``pen_logits`` (N, 3), ``h_out``, ``c_out``. The unconditional model's step takes no ``z``,
  and its ``h`` and ``c`` are optional inputs: left out, they are zeros, its initial state.

Tasks: ``encode_strokes`` (encoder), ``init_state`` (init_state, also ``sample``: its z has the
standard normal prior) and ``draw_strokes`` (decoder_step); ``stroke_spec`` gives what the manifest's ``strokes`` records. Offsets come out in
the data's normalised units: multiply by the data's scale factor to get its own.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

from trainer.data import Batch, DataError, DataSpec
from trainer.families.base import ExportGraph, Family
from trainer.families.configs import SketchRNNConfig
from trainer.losses import (
    annealed_kl_weight,
    kl_per_dimension,
    stroke_reconstruction_loss,
)
from trainer.networks.sketch_rnn import (
    START_POINT,
    STROKE_DIM,
    DecoderStepGraph,
    EncoderGraph,
    InitStateGraph,
    Mixture,
    SketchRNNModel,
    UnconditionalStepGraph,
)

RENDER_SIZE = 64  # grids show sketches rendered at this size
RENDER_MARGIN = 0.08  # share of the canvas left empty around a sketch
_GRID_SEED = 0  # grids draw from their own generator: they never touch training's random streams
# What a caller of the exported graphs must know that their shapes cannot say (manifest conventions).
STROKE_CONVENTION = ("stroke-5 rows (dx, dy, p1, p2, p3): the offset from the previous point in units of the data's "
                     "scale factor, then the pen state after the point, one-hot: p1 pen down, p2 pen lifted, p3 the "
                     "drawing has ended; the first input point is (0, 0, 1, 0, 0)")
STATE_CONVENTION = ("decoder_step's h and c start as init_state(z) (the unconditional model: zeros) and are its "
                    "h_out and c_out after each step")
STEP_OUTPUTS = ["pi", "mu_x", "mu_y", "sigma_x", "sigma_y", "rho", "pen_logits", "h_out", "c_out"]


class SketchRNN(Family):
    """sketch-rnn: a bidirectional LSTM encoder and a mixture-density LSTM decoder over stroke-5."""

    name = "sketch-rnn"
    kind = "stroke_vae"
    # "sample": latents from the standard normal are meaningful (the prior), as for a VAE's decoder.
    tasks = {"encode_strokes": "encoder", "init_state": "init_state", "draw_strokes": "decoder_step",
             "sample": "init_state"}
    value_range = (0.0, 1.0)  # of the rendered grids
    needs = ("strokes", "lengths")
    conventions = {"strokes": STROKE_CONVENTION, "state": STATE_CONVENTION}

    def __init__(self, config: SketchRNNConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        if len(self.shape) != 2 or self.shape[1] != STROKE_DIM:
            raise DataError(f"sketch-rnn trains on stroke-5 sequences (T, 5); {data.source} gives {self.shape}")
        self.config: SketchRNNConfig = config
        self.max_steps = int(self.shape[0])
        # The data's scale factor (dx, dy were divided by it): drawn offsets times it are in the
        # data's own units. For the exporter's manifest; the model itself works in unit scale.
        self.stroke_scale = float(getattr(data, "stroke_scale", 1.0) or 1.0)
        if config.unconditional:
            self.latent_dim = 0
            self.tasks = {"draw_strokes": "decoder_step"}
        net = SketchRNNModel(config.enc_rnn, config.dec_rnn, self.latent_dim, config.mixtures,
                           config.layer_norm, config.recurrent_dropout)
        self.modules = {"sketch_rnn": net.to(device)}
        self.optimizers = {"sketch_rnn": torch.optim.Adam(net.parameters(), lr=config.lr)}
        self.train_modules = dict(self.modules)

    # --- training -----------------------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        """magenta's schedule: (lr - min_lr) * lr_decay ** step + min_lr."""
        c = self.config
        return (c.lr - c.min_lr) * c.lr_decay ** step + c.min_lr

    def augment(self, strokes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Random point dropping, then random scale (from the global generator: exact resume)."""
        c = self.config
        if c.drop_points > 0:
            strokes, lengths = drop_points(strokes, lengths, c.drop_points)
        if c.scale_augment > 0:
            strokes = scale_strokes(strokes, c.scale_augment)
        return strokes, lengths

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        with flushing_subnormals(self.device):
            return self._train_step(batch, step)

    def _train_step(self, batch: Batch, step: int) -> dict[str, float]:
        c = self.config
        model, opt = self.train_modules["sketch_rnn"], self.optimizers["sketch_rnn"]
        strokes, lengths = self.augment(batch.strokes.float(), batch.lengths.long())
        to_end = c.pen_loss == "to_end"
        if to_end:
            strokes = trim_to_end(strokes, lengths)
        lr = self.learning_rate(step)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        mix, mu, presig = model(strokes, lengths)
        offsets, pen = stroke_reconstruction_loss(*mix, strokes, lengths, steps=self.max_steps, pen_to_end=to_end)
        recon = offsets + pen
        loss = recon
        metrics: dict[str, float] = {}
        if mu is not None:
            kl = kl_per_dimension(mu, presig)
            weight = annealed_kl_weight(step, c.kl_weight, c.kl_weight_start, c.kl_decay_rate)
            loss = recon + weight * torch.clamp(kl, min=c.kl_min)
            metrics = {"kl": kl.item(), "kl_weight": weight}
        loss.backward()
        params = list(self.modules["sketch_rnn"].parameters())
        norm = float(torch.nn.utils.clip_grad_norm_(params, float("inf")))  # the norm only
        if c.grad_clip_value > 0:
            torch.nn.utils.clip_grad_value_(params, c.grad_clip_value)
        opt.step()
        return {"loss": loss.item(), "recon_nll": recon.item(), "offset_nll": offsets.item(),
                "pen_nll": pen.item(), **metrics, "lr": lr, "grad_norm": norm}

    # --- encoding, drawing, grids -------------------------------------------------------
    @torch.no_grad()
    def encode(self, strokes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) (N, latent_dim) of stroke-5 sequences (N, T, 5) with `lengths` real points."""
        net = self.modules["sketch_rnn"]
        if net.encoder is None:
            raise ValueError("an unconditional sketch-rnn has no encoder")
        with self._eval():
            return net.encoder(strokes.to(self.device, torch.float32), lengths.to(self.device, torch.int64))

    @torch.no_grad()
    def draw(self, z: torch.Tensor | None, temperature: float = 1.0, max_steps: int | None = None,
             generator: torch.Generator | None = None, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw stroke-5 sequences from latents z (N, latent_dim) (None and `n` sketches for the
        unconditional model): (strokes float32 (N, max_steps, 5), lengths int64 (N,)), padded
        like the data. Every random draw comes from `generator` (a CPU generator; a fresh
        unseeded one when None), the same number each step, so a seed gives the same sketches."""
        decoder = self.modules["sketch_rnn"].decoder
        steps = max_steps or self.max_steps
        if decoder.latent_dim:
            if z is None:
                raise ValueError("this sketch-rnn draws from latents z (N, latent_dim)")
            n = len(z)
            z = z.to(self.device, torch.float32)
        else:
            n = len(z) if z is not None else n
            z = None
        if not n:
            raise ValueError("draw needs at least one latent (or n >= 1 for the unconditional model)")
        generator = generator if generator is not None else torch.Generator()
        strokes = torch.zeros(n, steps, STROKE_DIM)
        strokes[..., 4] = 1.0
        lengths = torch.zeros(n, dtype=torch.int64)
        done = torch.zeros(n, dtype=torch.bool)
        with self._eval():
            h, c = decoder.initial_state(z, n)
            point = torch.tensor(START_POINT, device=self.device).expand(n, STROKE_DIM)
            for t in range(steps):
                mix, h, c = decoder.step(point, z, h, c)
                row = sample_point(Mixture(*(p.float().cpu() for p in mix)), temperature, generator)
                ended = row[:, 4] > 0
                live = ~done & ~ended
                strokes[live, t] = row[live]
                lengths += live.long()
                done |= ended
                if bool(done.all()):
                    break
                point = row.to(self.device)
        return strokes, lengths

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Sketches drawn from latents at the configured temperature, rendered (N, 1, S, S) in [0, 1]."""
        strokes, lengths = self.draw(z, self.config.grid_temperature, n=len(z),
                                     generator=torch.Generator().manual_seed(_GRID_SEED))
        return render_strokes(strokes, lengths, RENDER_SIZE)

    @torch.no_grad()
    def extra_grids(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Sketches beside their reconstructions (drawn from the encoder's mean), interleaved."""
        if not self.latent_dim or batch.strokes is None:
            return {}
        mu, _ = self.encode(batch.strokes, batch.lengths)
        strokes, lengths = self.draw(mu, self.config.grid_temperature,
                                     generator=torch.Generator().manual_seed(_GRID_SEED))
        originals = render_strokes(batch.strokes.cpu(), batch.lengths.cpu(), RENDER_SIZE)
        recon = render_strokes(strokes, lengths, RENDER_SIZE)
        return {"recon": torch.stack([originals, recon], dim=1).flatten(0, 1)}

    # --- export -------------------------------------------------------------------------
    def stroke_spec(self) -> dict[str, float | int | tuple[float, ...]]:
        """What a caller of the exported graphs needs beyond their shapes (latentforge.manifest.StrokeSpec)."""
        decoder = self.modules["sketch_rnn"].decoder
        return {"max_steps": self.max_steps, "mixtures": decoder.mixtures, "hidden": decoder.hidden,
                "scale": self.stroke_scale, "temperature": float(self.config.grid_temperature),
                "start_point": tuple(START_POINT)}

    def export_graphs(self) -> list[ExportGraph]:
        net = self.modules["sketch_rnn"].cpu().eval()
        decoder = net.decoder
        t, d, hidden, m = self.max_steps, self.latent_dim, decoder.hidden, decoder.mixtures

        def points(n: int, g: torch.Generator) -> torch.Tensor:
            pen = torch.nn.functional.one_hot(torch.randint(0, 3, (n,), generator=g), 3).float()
            return torch.cat([torch.randn(n, 2, generator=g), pen], dim=1)

        def state(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.tanh(torch.randn(n, hidden, generator=g)), torch.randn(n, hidden, generator=g)

        example = torch.Generator().manual_seed(0)
        if not d:
            def step_inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
                return (points(n, g), *state(n, g))

            return [ExportGraph(role="decoder_step", module=UnconditionalStepGraph(decoder).eval(),
                                example_inputs=step_inputs(2, example), input_names=["point", "h", "c"],
                                output_names=list(STEP_OUTPUTS), make_inputs=step_inputs,
                                optional_inputs=("h", "c"))]

        def encoder_inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
            return random_strokes(n, t, g)

        def init_inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
            return (torch.randn(n, d, generator=g),)

        def step_inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
            return (points(n, g), torch.randn(n, d, generator=g), *state(n, g))

        assert net.encoder is not None and m > 0
        return [
            ExportGraph(role="encoder", module=EncoderGraph(net.encoder).eval(),
                        example_inputs=encoder_inputs(2, example), input_names=["strokes", "lengths"],
                        output_names=["mu", "logvar"], make_inputs=encoder_inputs),
            ExportGraph(role="init_state", module=InitStateGraph(decoder).eval(),
                        example_inputs=init_inputs(2, example), input_names=["z"], output_names=["h", "c"],
                        make_inputs=init_inputs),
            ExportGraph(role="decoder_step", module=DecoderStepGraph(decoder).eval(),
                        example_inputs=step_inputs(2, example), input_names=["point", "z", "h", "c"],
                        output_names=list(STEP_OUTPUTS), make_inputs=step_inputs),
        ]


# --- sampling, augmentation and rendering --------------------------------------------------------

@contextlib.contextmanager
def flushing_subnormals(device: torch.device) -> Iterator[None]:
    """On the CPU, subnormal floats flushed to zero inside: gradients through time decay into the
    subnormal range on long sequences, where each CPU operation is many times slower (a step of
    the default model at T = 200 took 1 s instead of 0.3 s). Per thread (the calling one and,
    at one thread, every op); turned off again after, the project's default."""
    if device.type != "cpu" or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def trim_to_end(strokes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A padded batch (N, T, 5) cut after its longest drawing's end state (step max(lengths)):
    what the encoder reads and every step the to_end loss counts stay, so its loss and gradients
    are the padded batch's; the LSTMs run fewer steps."""
    keep = min(strokes.shape[1], int(lengths.max()) + 1) if len(lengths) else strokes.shape[1]
    return strokes[:, :keep]


def sample_point(mix: Mixture, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """One stroke-5 row per sequence from one step's Mixture (N, M) on the CPU.

    Temperature as the paper: the mixture and pen logits are divided by it and the Gaussians'
    variances multiplied by it. Draws 1 component, 2 normals and 1 pen state per row.
    """
    tau = max(float(temperature), 1e-6)
    n = mix.pi.shape[0]
    k = torch.multinomial(torch.softmax(mix.pi / tau, dim=1), 1, generator=generator)
    pick = [p.gather(1, k)[:, 0] for p in (mix.mu_x, mix.mu_y, mix.sigma_x, mix.sigma_y, mix.rho)]
    mu_x, mu_y, sigma_x, sigma_y, rho = pick
    e = torch.randn(n, 2, generator=generator)
    scale = math.sqrt(tau)
    dx = mu_x + sigma_x * scale * e[:, 0]
    dy = mu_y + sigma_y * scale * (rho * e[:, 0] + torch.sqrt((1 - rho.pow(2)).clamp(min=0)) * e[:, 1])
    pen = torch.multinomial(torch.softmax(mix.pen / tau, dim=1), 1, generator=generator)[:, 0]
    return torch.cat([dx[:, None], dy[:, None], torch.nn.functional.one_hot(pen, 3).float()], dim=1)


def scale_strokes(strokes: torch.Tensor, spread: float) -> torch.Tensor:
    """Each sketch's dx and dy multiplied by factors drawn uniformly from [1 - spread, 1 + spread]
    (magenta's random_scale)."""
    factors = 1.0 + (torch.rand(strokes.shape[0], 1, 2) * 2 - 1).to(strokes.device) * spread
    return torch.cat([strokes[..., :2] * factors, strokes[..., 2:]], dim=-1)


def drop_points(strokes: torch.Tensor, lengths: torch.Tensor, prob: float) -> tuple[torch.Tensor, torch.Tensor]:
    """magenta's augment_strokes on stroke-5 batches: a point inside a pen-down run (the pen down
    before and after it, past the run's third point) is dropped with probability `prob`; the
    pen then goes straight from the point before it to the one after. Returns the sequences
    repacked (padding (0, 0, 0, 0, 1)) and their new lengths."""
    n, steps, _ = strokes.shape
    device = strokes.device
    t = torch.arange(steps, device=device)[None, :]
    lengths = lengths.to(device)
    down = strokes[..., 2] > 0.5
    inner = down & torch.cat([torch.zeros_like(down[:, :1]), down[:, :-1]], dim=1)
    # the length of the inner run ending at each point (0 where a run is broken)
    count = inner.long().cumsum(dim=1)
    count = count - torch.cummax(torch.where(inner, torch.zeros_like(count), count), dim=1).values
    drop = inner & (count > 2) & (t < lengths[:, None] - 1) & (torch.rand(n, steps).to(device) < prob)
    if not bool(drop.any()):
        return strokes, lengths
    keep = (t < lengths[:, None]) & ~drop
    positions = strokes[..., :2].cumsum(dim=1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    new_lengths = keep.sum(dim=1)
    kept_positions = positions.gather(1, order[..., None].expand(-1, -1, 2))
    offsets = kept_positions - torch.cat([torch.zeros_like(kept_positions[:, :1]), kept_positions[:, :-1]], dim=1)
    pens = strokes[..., 2:].gather(1, order[..., None].expand(-1, -1, 3))
    real = (t < new_lengths[:, None])[..., None]
    padding = strokes.new_tensor((0.0, 0.0, 0.0, 0.0, 1.0))
    return torch.where(real, torch.cat([offsets, pens], dim=-1), padding), new_lengths


def random_strokes(n: int, steps: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n random stroke-5 sequences (N, steps, 5) padded like real data, and their lengths."""
    lengths = torch.randint(1, steps + 1, (n,), generator=generator)
    pen = torch.nn.functional.one_hot(torch.randint(0, 2, (n, steps), generator=generator), 3).float()
    rows = torch.cat([torch.randn(n, steps, 2, generator=generator), pen], dim=-1)
    real = (torch.arange(steps)[None, :] < lengths[:, None])[..., None]
    return torch.where(real, rows, torch.tensor((0.0, 0.0, 0.0, 0.0, 1.0))), lengths


def render_strokes(strokes: torch.Tensor, lengths: torch.Tensor, size: int = RENDER_SIZE) -> torch.Tensor:
    """Stroke-5 sequences drawn as white lines on black, each fitted to the canvas: (N, 1, size,
    size) in [0, 1], as the service renders drawings (latentforge.strokes.render: from the origin,
    the pen joins a point to the next while it is down after the point)."""
    from latentforge.strokes import render

    data = strokes.detach().cpu().float().numpy()
    counts = lengths.detach().cpu().numpy()
    out = np.zeros((len(data), 1, size, size), np.float32)
    for i, (seq, count) in enumerate(zip(data, counts)):
        seq = seq[:int(count)]
        if len(seq):
            rows = np.column_stack([seq[:, :2], (seq[:, 3] > 0.5).astype(np.float32)])  # pen lifted after the point
            out[i, 0] = render(rows, size, margin=RENDER_MARGIN)
    return torch.from_numpy(out)
