// The training options of proto/latentforge/v1/training.proto (TrainingOptions and each family's
// options message), for the job form: name, type, the trainer's default and what it does. Every
// option is optional: a field left empty takes the trainer's default.
//
// Types: "int" (int64: sent as a JSON string), "float" (double), "bool", "text", or a list of
// choices (a string with a fixed set of values).

export const COMMON = [
  ["steps", "int", "3000", "total optimisation steps"],
  ["time_budget", "text", "none", "training time budget, e.g. 90s, 6m, 1h30m"],
  ["batch_size", "int", "64", "examples per step and process"],
  ["seed", "int", "0", "seed for weights, data order and noise"],
  ["image_size", "int", "the data's", "resize/crop images to this square size"],
  ["channels", "int", "the data's", "1 = grayscale, 3 = RGB"],
  ["min_image_size", "int", "8", "refuse source images smaller than this"],
  ["sample_every", "int", "250", "a sample grid every N steps"],
  ["checkpoint_every", "int", "500", "a checkpoint every N steps"],
  ["keep_checkpoints", "int", "3", "step checkpoints to keep, 0 = all"],
  ["grid_size", "int", "64", "images per sample grid"],
  ["log_every", "int", "10", "a progress event every N steps"],
  ["eval_every", "int", "500", "quality scores every N steps, 0 = off"],
  ["eval_samples", "int", "500", "samples per evaluation"],
  ["threads", "int", "0", "torch threads per process, 0 = torch's default"],
  ["device", ["auto", "cpu", "cuda"], "auto", "where to train"],
  ["device_data_max_bytes", "int", "2 GiB", "data sets up to this size are kept on the GPU"],
  ["hold_out", "float", "family's", "share of the data kept out of training for the quality meter"],
];

export const FAMILIES = {
  dcgan: {
    label: "DCGAN",
    data: "images",
    options: [
      ["latent_dim", "int", "100", "size of the latent vector z"],
      ["width", "int", "64", "base channel width of the networks"],
      ["gan_loss", ["nonsaturating", "hinge"], "nonsaturating", "GAN objective"],
      ["lr", "float", "0.001", "generator learning rate"],
      ["lr_d", "float", "lr", "discriminator learning rate"],
      ["beta1", "float", "0.5", "Adam beta1"],
      ["beta2", "float", "0.999", "Adam beta2"],
      ["grad_clip", "float", "10", "max gradient norm per network, 0 = off"],
      ["ema_decay", "float", "0.999", "EMA of the generator's weights, 0 = off"],
      ["spectral_norm", "bool", "off", "spectral normalisation of the discriminator"],
      ["r1_gamma", "float", "0", "R1 gradient penalty weight, 0 = off"],
      ["r1_every", "int", "16", "apply R1 every N steps"],
      ["augment", "text", "none", "translation, cutout, color (comma-separated) or none"],
      ["conditional", "bool", "when labelled", "condition on the data's class labels"],
    ],
  },
  vae: {
    label: "VAE",
    data: "images",
    options: [
      ["latent_dim", "int", "8", "size of the latent vector z"],
      ["width", "int", "64", "base channel width of the networks"],
      ["recon", ["auto", "bce", "mse", "gaussian"], "auto", "reconstruction loss"],
      ["conditional", "bool", "off", "condition on the data's class labels"],
      ["beta", "float", "2", "weight of the KL term"],
      ["kl_warmup_steps", "int", "500", "steps over which the KL weight rises to beta"],
      ["perceptual", "float", "0", "feature-matching reconstruction weight, 0 = off"],
      ["temperature", "float", "1", "scale of the prior latents training grids decode"],
      ["lr", "float", "0.001", "learning rate"],
      ["beta1", "float", "0.9", "Adam beta1"],
      ["beta2", "float", "0.999", "Adam beta2"],
      ["grad_clip", "float", "10", "max gradient norm, 0 = off"],
    ],
  },
  ae: {
    label: "Autoencoder",
    data: "images",
    options: [
      ["latent_dim", "int", "16", "size of the latent vector z"],
      ["width", "int", "64", "base channel width of the networks"],
      ["recon", ["auto", "bce", "mse"], "auto", "reconstruction loss"],
      ["denoise_std", "float", "0", "std of the input noise (denoising), 0 = plain"],
      ["lr", "float", "0.001", "learning rate"],
      ["beta1", "float", "0.9", "Adam beta1"],
      ["beta2", "float", "0.999", "Adam beta2"],
      ["grad_clip", "float", "10", "max gradient norm, 0 = off"],
    ],
  },
  completion: {
    label: "Image completion",
    data: "images",
    options: [
      ["latent_dim", "int", "16", "size of z: different z, different fillings"],
      ["width", "int", "16", "base channel width of the U-Net and the discriminator"],
      ["z_inject", ["bottleneck", "film"], "bottleneck", "where z enters the U-Net"],
      ["candidates", "int", "4", "K in the best-of-K reconstruction loss"],
      ["recon_weight", "float", "1", "weight of the L1 loss on the hole"],
      ["adv_weight", "float", "0.05", "weight of the adversarial loss, 0 = off"],
      ["mode_seeking", "float", "0", "mode-seeking term between two candidates, 0 = off"],
      ["gan_loss", ["nonsaturating", "hinge"], "nonsaturating", "GAN objective"],
      ["lr", "float", "0.001", "generator learning rate"],
      ["lr_d", "float", "lr", "discriminator learning rate"],
      ["beta1", "float", "0.5", "Adam beta1"],
      ["beta2", "float", "0.999", "Adam beta2"],
      ["grad_clip", "float", "10", "max gradient norm per network, 0 = off"],
      ["ema_decay", "float", "0", "EMA of the generator's weights, 0 = off"],
    ],
  },
  "sketch-rnn": {
    label: "sketch-rnn (strokes)",
    data: "strokes",
    options: [
      ["latent_dim", "int", "64", "size of the latent vector z"],
      ["enc_rnn", "int", "128", "encoder LSTM size (each direction)"],
      ["dec_rnn", "int", "256", "decoder LSTM size"],
      ["mixtures", "int", "10", "Gaussians in each step's mixture"],
      ["unconditional", "bool", "off", "decoder only: no encoder and no z"],
      ["layer_norm", "bool", "off", "layer-normalised LSTM cell in the decoder"],
      ["recurrent_dropout", "float", "1", "keep probability of recurrent dropout, 1 = off"],
      ["kl_weight", "float", "0.5", "weight of the KL term once annealed"],
      ["kl_weight_start", "float", "0.01", "KL weight at step 0"],
      ["kl_decay_rate", "float", "0.999", "KL annealing rate per step"],
      ["kl_min", "float", "0.2", "KL tolerance per latent dimension"],
      ["lr", "float", "0.001", "learning rate"],
      ["lr_decay", "float", "0.9999", "per-step decay of the learning rate"],
      ["min_lr", "float", "1e-5", "the learning rate's floor"],
      ["grad_clip_value", "float", "1", "clip gradient elements to [-v, v], 0 = off"],
      ["scale_augment", "float", "0.15", "random scale augmentation of dx, dy"],
      ["drop_points", "float", "0", "random point dropping probability"],
      ["grid_temperature", "float", "0.4", "sampling temperature of training grids"],
    ],
  },
};

/** The proto3 JSON name of a field (lowerCamelCase). */
export function jsonName(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

/** JobSpec's oneof field of a family's options (its name with "-" as "_"), in JSON. */
export function familyField(family) {
  return jsonName(family.replace(/-/g, "_"));
}

/**
 * A value typed into the form as the JSON the message wants, or undefined when left empty
 * (the trainer's default). Throws an Error naming the option when the value cannot be it.
 */
export function optionValue(name, type, raw) {
  const text = String(raw ?? "").trim();
  if (text === "") return undefined;
  if (type === "int") {
    if (!/^-?\d+$/.test(text)) throw new Error(`${name} must be a whole number (got "${text}")`);
    return text; // int64: a JSON string
  }
  if (type === "float") {
    const value = Number(text);
    if (!Number.isFinite(value)) throw new Error(`${name} must be a number (got "${text}")`);
    return value;
  }
  if (type === "bool") return text === "true";
  return text;
}
