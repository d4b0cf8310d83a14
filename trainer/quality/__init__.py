"""Quality as a number: sample scores in the feature space of a small network the project trains.

No download: for each data set a feature network is trained once (a digit classifier for
labelled data, an autoencoder for unlabelled images), cached by the sha256 of the data, and
used to score samples with FID, KID, precision/recall and, for labelled data, class
statistics, each printed beside the floor that real held-out images reach.

- ``features``: the feature networks, their training and their cache (the "meter").
- ``metrics``: FID, KID, precision/recall, class statistics on feature arrays.
- ``scored``: the scored model (a run's checkpoint in PyTorch, or an exported version folder
  through ``latentforge.runtime``) and the one report shape: each task's figures, keyed by task,
  beside their provenance; ``round_figure``, how every figure is rounded.
- ``samplers``: N images from a scored model.
- ``evaluate``: the sample task's figures, ``evaluate_model`` (the report ``latentforge evaluate``
  prints), and ``score_images`` for the trainer's periodic evaluation.
- ``completion``: how well a model fills the hole of held-out images (hole PSNR and SSIM, class
  reads of the best of K candidates, their diversity), for completion models and the iterative
  method of VAEs and autoencoders.
- ``strokes``: a stroke model's held-out likelihood and its rendered drawings' scores.
- ``cli``: ``latentforge evaluate``.
"""
