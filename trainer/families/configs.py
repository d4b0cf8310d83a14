"""Each family's options: one dataclass per family, registered beside it in trainer.families.

A family's config holds what only that family uses (network sizes, its objective, its
optimiser settings); `trainer.config.TrainConfig` holds what every run has. Fields are
declared with `option()` so that the CLI flags, validation and the stored run describe them
from this one place. No torch here (the CLI imports this to build its flags).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.options import FamilyConfig, option

GAN_LOSSES = ("nonsaturating", "hinge")  # trainer.losses.GAN_LOSSES implements them
RECON_LOSSES = ("auto", "bce", "mse")  # trainer.losses.reconstruction_loss implements them
# The VAE's: also "gaussian", Gaussian pixels whose shared variance is learned (set to its optimum
# for each batch), which weighs the reconstruction against the KL term by the data's own error.
VAE_RECON_LOSSES = (*RECON_LOSSES, "gaussian")


AUGMENTATIONS = ("translation", "cutout", "color")  # trainer.augment implements them


def augment_ops(policy: str) -> tuple[str, ...]:
    """The op names of an --augment value, in order ("none" or "" = no augmentation)."""
    return tuple(op for op in (p.strip() for p in policy.split(",")) if op and op != "none")


def _adam_beta1(default: float) -> Any:
    """Adam's beta1 option with a family's default (the one declaration of its help and limits)."""
    return option(default, "Adam beta1", at_least=0)


@dataclass
class AdamOptions(FamilyConfig):
    """The Adam optimiser's options, declared once for every family that trains with Adam (the
    fields come first in a family's options). A family with a discriminator keeps beta1 at 0.5,
    as adversarial training wants (Radford et al. 2015): it declares ``beta1 = _adam_beta1(0.5)``.
    sketch-rnn's decaying learning rate is its own."""

    lr: float = option(1e-3, "learning rate (Adam)", above=0)
    beta1: float = _adam_beta1(0.9)
    beta2: float = option(0.999, "Adam beta2", above=0)

    def problems(self) -> list[str]:
        return [f"{name} must be < 1 (got {value})" for name, value in (("beta1", self.beta1), ("beta2", self.beta2))
                if isinstance(value, (int, float)) and value >= 1]


@dataclass
class DCGANConfig(AdamOptions):
    """Options of the DCGAN family (and Adam's, from AdamOptions)."""

    latent_dim: int = option(100, "size of the latent vector z", at_least=1, fixed=True)
    width: int = option(64, "base channel width of the networks", at_least=1, fixed=True)
    gan_loss: str = option("nonsaturating", "GAN objective", choices=GAN_LOSSES, fixed=True)
    lr_d: float | None = option(None, "discriminator learning rate (default: lr, the generator's)", above=0)
    beta1: float = _adam_beta1(0.5)
    grad_clip: float = option(10.0, "max gradient norm per network, 0 = off", at_least=0)
    ema_decay: float = option(0.999, "keep an exponential moving average of the generator's weights with this "
                              "decay; grids, sampling and export use it; 0 = off", at_least=0)
    spectral_norm: bool = option(False, "spectral normalisation of the discriminator's layers, in place of "
                                 "its batch norm", fixed=True)
    r1_gamma: float = option(0.0, "weight of the R1 gradient penalty on real images, 0 = off", at_least=0)
    r1_every: int = option(16, "apply the R1 penalty every N steps (lazy, scaled by N)", at_least=1)
    augment: str = option("none", "differentiable augmentation of real and generated images before the "
                          f"discriminator: comma-separated {', '.join(AUGMENTATIONS)}, or none")
    conditional: bool | None = option(None, "condition on the data's class labels (label embedding and "
                                      "conditional batch norm in the generator, label planes and projection in "
                                      "the discriminator); default: when the data has labels", fixed=True)

    def problems(self) -> list[str]:
        problems = super().problems()
        if isinstance(self.ema_decay, (int, float)) and self.ema_decay >= 1:
            problems.append(f"ema_decay must be < 1 (got {self.ema_decay})")
        if isinstance(self.augment, str):
            unknown = [op for op in augment_ops(self.augment) if op not in AUGMENTATIONS]
            if unknown:
                problems.append(f"augment: unknown {', '.join(unknown)}; use a comma-separated list of "
                                f"{', '.join(AUGMENTATIONS)}, or none")
        return problems


VAE_PRIORS = ("mixture", "normal")


@dataclass
class VAEConfig(AdamOptions):
    """Options of the convolutional VAE family (and Adam's, from AdamOptions). Latent size 32,
    beta 1 and a 40-component mixture prior are the defaults because together they drew the
    best samples and completions measured (docs/benchmarks/vae_quality.md): with a learned
    prior, a larger latent and a lighter KL term reconstruct better and no longer cost samples."""

    latent_dim: int = option(32, "size of the latent vector z", at_least=1, fixed=True)
    width: int = option(64, "base channel width of the networks (the VAE's use half of it)", at_least=1,
                        fixed=True)
    recon: str = option("auto", "reconstruction loss: bce, mse, gaussian (learned pixel variance) or auto "
                        "(bce for 1 channel, mse otherwise)", choices=VAE_RECON_LOSSES, fixed=True)
    conditional: bool = option(False, "condition on the data's class labels (needs labelled data); the "
                               "exported decoder takes a label beside z", fixed=True)
    beta: float = option(1.0, "weight of the KL term in the ELBO", at_least=0)
    kl_warmup_steps: int = option(500, "steps over which the KL weight rises linearly from 0 to beta", at_least=0)
    perceptual: float = option(0.0, "weight of a feature-matching reconstruction term: squared distance "
                               "between the features of images and their reconstructions in a feature "
                               "network the project trains on the data (0 = off)", at_least=0)
    temperature: float = option(1.0, "scale of the prior latents that training grids and `latentforge "
                                "evaluate RUN_DIR` decode (serving has truncation instead)", above=0)
    grad_clip: float = option(10.0, "max gradient norm, 0 = off", at_least=0)
    prior: str = option("mixture", "what samples are drawn from: mixture (a Gaussian mixture fitted to the "
                        "encoded training set whenever the run is scored and at its end, exported as the "
                        "model's prior graph) or normal (the standard normal)", choices=VAE_PRIORS, fixed=True)
    prior_components: int = option(40, "Gaussians in the mixture prior", at_least=1, fixed=True)


@dataclass
class AEConfig(AdamOptions):
    """Options of the convolutional autoencoder family (and Adam's, from AdamOptions)."""

    latent_dim: int = option(16, "size of the latent vector z", at_least=1, fixed=True)
    width: int = option(64, "base channel width of the networks (the autoencoder's use half of it)",
                        at_least=1, fixed=True)
    recon: str = option("auto", "reconstruction loss: bce, mse or auto (bce for 1 channel, mse otherwise)",
                        choices=RECON_LOSSES, fixed=True)
    denoise_std: float = option(0.0, "denoising autoencoder: std of the Gaussian noise added to its inputs "
                                "in training, images in [0, 1] (0 = plain autoencoder)", at_least=0)
    grad_clip: float = option(10.0, "max gradient norm, 0 = off", at_least=0)


Z_INJECTIONS = ("bottleneck", "film")  # trainer.networks.unet implements them
FIRST_CANDIDATES = ("mode", "sample")  # what Complete's candidate 0 is (CompletionConfig.first_candidate)


@dataclass
class CompletionConfig(AdamOptions):
    """Options of the image completion family (trainer.families.completion), and Adam's (from
    AdamOptions); the defaults are
    the settings docs/benchmarks/completion_ablation.md measured best within a CPU demo's budget."""

    latent_dim: int = option(16, "size of the latent vector z (different z, different fillings)", at_least=1,
                             fixed=True)
    width: int = option(16, "base channel width of the U-Net and the discriminator", at_least=1, fixed=True)
    z_inject: str = option("bottleneck", "where z enters the U-Net: bottleneck (projected planes at the bottleneck) or "
                           "film (also a scale and shift per channel at every decoder stage)", choices=Z_INJECTIONS,
                           fixed=True)
    candidates: int = option(4, "K in the best-of-K reconstruction loss: K completions per image, only the one "
                             "nearest the truth is pulled to it (1 = plain reconstruction, which lets z be ignored)",
                             at_least=1)
    recon_weight: float = option(1.0, "weight of the L1 reconstruction loss on the hole", at_least=0)
    adv_weight: float = option(0.05, "weight of the adversarial loss (a discriminator sees the whole composited "
                               "image; 0 = off)", at_least=0)
    mode_seeking: float = option(0.0, "weight of the mode-seeking term (Mao et al. 2019) between two candidates, "
                                 "needs candidates >= 2 (0 = off)", at_least=0)
    gan_loss: str = option("nonsaturating", "GAN objective", choices=GAN_LOSSES)
    lr_d: float | None = option(None, "discriminator learning rate (default: lr, the generator's)", above=0)
    beta1: float = _adam_beta1(0.5)
    grad_clip: float = option(10.0, "max gradient norm per network, 0 = off", at_least=0)
    ema_decay: float = option(0.0, "keep an exponential moving average of the generator's weights with this "
                              "decay; grids, completion and export use it; 0 = off", at_least=0)
    first_candidate: str = option("mode", "candidate 0: mode (z = 0, trained toward the truth by plain L1 beside the "
                                  "best-of-K candidates: the most likely filling, served first) or sample (a latent "
                                  "from its seed like the rest)", choices=FIRST_CANDIDATES, fixed=True)
    mode_weight: float = option(1.0, "weight of the z = 0 candidate's L1 loss on the hole (first_candidate mode)",
                                at_least=0)

    def problems(self) -> list[str]:
        problems = super().problems()
        if isinstance(self.ema_decay, (int, float)) and self.ema_decay >= 1:
            problems.append(f"ema_decay must be < 1 (got {self.ema_decay})")
        if (isinstance(self.mode_seeking, (int, float)) and isinstance(self.candidates, int)
                and self.mode_seeking > 0 and self.candidates < 2):
            problems.append(f"mode_seeking compares two candidates; set candidates >= 2 (got {self.candidates})")
        if (isinstance(self.recon_weight, (int, float)) and isinstance(self.adv_weight, (int, float))
                and self.recon_weight == 0 and self.adv_weight == 0):
            problems.append("recon_weight and adv_weight are both 0: nothing to train on")
        return problems


PEN_LOSSES = ("all_steps", "to_end")  # trainer.losses.stroke_reconstruction_loss implements them


@dataclass
class SketchRNNConfig(FamilyConfig):
    """Options of the sketch-rnn family (trainer.families.sketch_rnn).

    The network sizes default to a CPU demo's: on one thread, batch 32, they train 3.5 steps/s
    at T = 200 (7.3 at T = 100, 2.4 at T = 250). The paper's sizes (Ha & Eck 2017, and magenta's
    sketch_rnn defaults), --enc-rnn 256 --dec-rnn 512 --latent-dim 128 --mixtures 20
    --batch-size 100, train 0.24 steps/s at T = 250 there (1.05 at batch 32, T = 200): for a GPU.
    On kanjivg:simple (T = 35, half the drawings 18 points or fewer), batch 64, two threads, the
    pen loss to each drawing's end and batches of similar lengths cut short (``pen_loss``,
    ``length_buckets``) train 27.7 steps/s where every padded step trained 17.8
    (docs/benchmarks/sketch_rnn_ablation.md).
    The other defaults are the paper's and magenta's, as each option's help says."""

    latent_dim: int = option(64, "size of the latent vector z (the paper: 128)", at_least=1, fixed=True)
    enc_rnn: int = option(128, "hidden size of each direction of the bidirectional LSTM encoder (the paper: 256)",
                          at_least=1, fixed=True)
    dec_rnn: int = option(256, "hidden size of the LSTM decoder (the paper: 512)", at_least=1, fixed=True)
    mixtures: int = option(10, "number of bivariate Gaussians in each step's offset mixture (the paper: 20)",
                           at_least=1, fixed=True)
    unconditional: bool = option(False, "decoder only: no encoder and no z, the decoder starts from a zero state",
                                 fixed=True)
    layer_norm: bool = option(False, "layer-normalised LSTM cell in the decoder (magenta's choice for small data "
                              "sets; a step-by-step loop, slower than the fused LSTM)", fixed=True)
    recurrent_dropout: float = option(1.0, "keep probability of the decoder's recurrent dropout (magenta: 0.9; "
                                      "1 = off; below 1 the decoder runs the step-by-step cell)", above=0)
    kl_weight: float = option(1.0, "weight of the KL term once annealed (the paper's 1.0 for some data sets; "
                              "magenta's default 0.5 drew prior drawings of 316-329 FID where 1.0 drew 296-309 in "
                              "the 10 minutes of a CPU run, docs/benchmarks/sketch_rnn_ablation.md)", at_least=0)
    kl_weight_start: float = option(0.01, "KL weight at step 0 (the paper's eta_min)", at_least=0)
    kl_decay_rate: float = option(0.999, "KL annealing: the weight's distance to kl_weight shrinks by this "
                                  "factor each step (the paper's R, 0.99995 over 100k+ steps; 0.999 anneals within "
                                  "the few thousand steps of a CPU run: at equal steps its prior drawings scored "
                                  "half the FID, docs/benchmarks/sketch_rnn_ablation.md)", above=0)
    kl_min: float = option(0.2, "KL tolerance: the KL term (per latent dimension) is not pushed below this",
                           at_least=0)
    lr: float = option(1e-3, "learning rate (Adam), decayed each step towards min_lr", above=0)
    lr_decay: float = option(0.9999, "the learning rate's distance to min_lr shrinks by this factor each step",
                             above=0)
    min_lr: float = option(1e-5, "the learning rate's floor", at_least=0)
    grad_clip_value: float = option(1.0, "clip every gradient element to [-v, v], as magenta does (0 = off)",
                                    at_least=0)
    scale_augment: float = option(0.15, "random scale augmentation: each sketch's dx and dy are multiplied by "
                                  "factors drawn from [1 - s, 1 + s] (0 = off)", at_least=0)
    drop_points: float = option(0.0, "random point dropping (magenta's augment_strokes, which uses 0.1): the "
                                "probability of dropping an inner point of a pen-down run (0 = off)", at_least=0)
    pen_loss: str = option("to_end", "which steps the pen states' cross-entropy counts: all_steps (every one of "
                           "the T padded steps, the paper's L_p; each batch keeps its padding) or to_end (each "
                           "drawing's points and its end state: the padding after the end does not count, so each "
                           "batch is cut after its longest drawing's end state, the same loss in fewer steps)",
                           choices=PEN_LOSSES)
    length_buckets: int = option(4, "batches drawn together and sorted by drawing length, so a batch holds "
                                 "drawings of similar length and (with --pen-loss to_end) is cut short; each "
                                 "epoch's pools are random, the batches' order shuffled (0 = off: batches as "
                                 "drawn)", at_least=0)
    grid_temperature: float = option(0.4, "sampling temperature of the sketches in training grids: the mixture "
                                     "and pen logits are divided by it, the Gaussians' variances multiplied by it",
                                     above=0)

    def problems(self) -> list[str]:
        problems = []
        for name in ("kl_decay_rate", "lr_decay", "recurrent_dropout"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and value > 1:
                problems.append(f"{name} must be <= 1 (got {value})")
        if isinstance(self.drop_points, (int, float)) and self.drop_points >= 1:
            problems.append(f"drop_points must be < 1 (got {self.drop_points})")
        if isinstance(self.scale_augment, (int, float)) and self.scale_augment >= 1:
            problems.append(f"scale_augment must be < 1 (got {self.scale_augment}); a factor must stay positive")
        return problems


STYLE_LOSSES = ("meanstd", "gram")  # trainer.families.style.style_statistics implements them
ALPHA_BLENDS = ("pixels", "features")  # trainer.networks.style.Stylizer implements them
_ENCODER_SEED_HELP = ("seed of the random-weight loss/encoder network (never trained, nothing downloaded; stored "
                      "with the checkpoint through this option)")


@dataclass
class AdaINConfig(AdamOptions):
    """Options of the arbitrary style family (trainer.families.adain; and Adam's, from AdamOptions):
    one model for every style, by adaptive instance normalisation (Huang & Belongie 2017) in the
    features of a seeded random-weight encoder, a decoder trained back to images. The run's --data
    is the content set (e.g. style:photos); `styles` the built-in set of style images.

    The defaults (skips, the reconstruction loss, the pixels' colour statistics, the content loss at
    every level) are the settings docs/benchmarks/style_ablation.md measured best: at 1,500 steps
    at 64 px, the pixels' colour statistics were the only setting to meet the style match target
    with content kept; at the demo's 8 minutes, the content loss at every level kept the content
    (0.63) that the deepest level alone let fade (0.42). On a 2-core CPU (batch 8, two threads)
    they train about 7.5 steps/s at 64 px (the demo's 8 minutes: about 3,500 steps)."""

    encoder_seed: int = option(0, _ENCODER_SEED_HELP, fixed=True)
    width: int = option(16, "base channel width of the encoder (widths width, 2x, 4x... per level) and its "
                        "mirror, the decoder", at_least=1, fixed=True)
    levels: int = option(3, "encoder levels (each after the first halves the size); the style statistics are "
                         "every level's with skips, else the deepest level's", at_least=1, fixed=True)
    style_weight: float = option(2.0, "weight of the style loss (per-channel means and standard deviations of "
                                 "the output's features at every level against the style's)", at_least=0)
    content_weight: float = option(1.0, "weight of the content loss (the output's features against the "
                                   "AdaIN target)", at_least=0)
    skips: bool = option(True, "AdaIN at every encoder level, and a decoder that takes every level (a U-Net's "
                         "upward half): the style's statistics are every level's, the content's fine structure "
                         "reaches the image", fixed=True)
    colour_stats: bool = option(True, "the style's statistics include its pixels' RGB means and standard "
                                "deviations, and the stylizer gives them to the decoded image (AdaIN on the pixels: a "
                                "colour transfer after decoding)", fixed=True)
    content_levels: int = option(0, "with skips: the content loss reads this many of the deepest levels, each "
                                 "against its AdaIN target (1 = the deepest only, as Huang & Belongie; 0 = every "
                                 "level)", at_least=0)
    recon_weight: float = option(1.0, "weight of a reconstruction loss: the decoder also turns the content's own "
                                 "features back into the content (pixel L1), as WCT trains its decoders (Li et al. "
                                 "2017); keeps the contents' shapes", at_least=0)
    alpha_blend: str = option("pixels", "how the exported stylizer's alpha mixes content and style: pixels "
                              "(alpha * stylised + (1 - alpha) * content: alpha 0 is the content exactly) or "
                              "features (Huang & Belongie's interpolation of the features before decoding: alpha "
                              "0 is the decoder's reconstruction of the content)", choices=ALPHA_BLENDS)
    styles: str = option("style:textures", "built-in data set of style images, read at the run's image size "
                         "(the run's --data holds the contents)", fixed=True)

    def problems(self) -> list[str]:
        problems = super().problems()
        if (isinstance(self.style_weight, (int, float)) and isinstance(self.content_weight, (int, float))
                and isinstance(self.recon_weight, (int, float))
                and self.style_weight == 0 and self.content_weight == 0 and self.recon_weight == 0):
            problems.append("style_weight, content_weight and recon_weight are all 0: nothing to train on")
        if isinstance(self.content_levels, int) and isinstance(self.levels, int) and self.content_levels > self.levels:
            problems.append(f"content_levels ({self.content_levels}) cannot exceed levels ({self.levels})")
        return problems


@dataclass
class StyleConfig(AdamOptions):
    """Options of the one-style family (trainer.families.style; and Adam's, from AdamOptions): a
    feed-forward transformer network (Johnson et al. 2016, at half width, with instance
    normalisation) trained for the style of its --data, usually one image (`latentforge train
    --model style --style-image art.png`), on the contents of `content`; the losses are read in a
    seeded random-weight encoder.

    Measured on a 2-core CPU (batch 8, these defaults, two threads, data loading not counted):
    64 px 7.9 steps/s, 128 px 0.93 steps/s, so 10 CPU minutes at 128 px are about 550 steps; 200
    steps at 64 px already draw the style's colours and texture over the contents' shapes."""

    encoder_seed: int = option(0, _ENCODER_SEED_HELP, fixed=True)
    encoder_width: int = option(16, "base channel width of the loss encoder (widths width, 2x, 4x at its three "
                                "levels)", at_least=1, fixed=True)
    width: int = option(16, "width of the transformer network's first layer (Johnson et al.: 32; half width "
                        "16), doubled at each of its two downsamplings", at_least=1, fixed=True)
    blocks: int = option(5, "residual blocks of the transformer network (Johnson et al.: 5)", at_least=0,
                         fixed=True)
    style_loss: str = option("meanstd", "style statistics matched at every encoder level: meanstd (per-channel "
                             "means and standard deviations) or gram (Gram matrices, Johnson et al.)",
                             choices=STYLE_LOSSES)
    style_weight: float = option(2.0, "weight of the style loss", at_least=0)
    content_weight: float = option(1.0, "weight of the content loss (the output's features at the loss "
                                   "encoder's middle level against the content's)", at_least=0)
    tv_weight: float = option(0.1, "weight of the total variation loss (mean squared difference of neighbouring "
                              "pixels), which smooths the output", at_least=0)
    content: str = option("style:photos", "built-in data set of content images, read at the run's image size "
                          "(the run's --data, or --style-image, holds the style)", fixed=True)

    def problems(self) -> list[str]:
        problems = super().problems()
        if (isinstance(self.style_weight, (int, float)) and isinstance(self.content_weight, (int, float))
                and self.style_weight == 0 and self.content_weight == 0):
            problems.append("style_weight and content_weight are both 0: nothing to train on")
        return problems
