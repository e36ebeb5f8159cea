"""Learned diffusion models on grammar data, next to the exact Bayes-optimal denoiser.

For a grammar (:class:`hiergrammar.Grammar`, e.g. an RHM) and a noise process of
:mod:`hiergrammar.noise`, belief propagation gives ``P(x_0 | x_t)`` exactly: the best denoiser
there is, its loss, and exact samples of the reverse process. This package trains diffusion
models on the grammar's strings and measures them against it, with one interface for both:

* :mod:`~hiergrammar.vision.grammar_diffusion.diffusions`: the families -- masked (absorbing),
  uniform, and Gaussian DDPM on one-hot leaves -- each on the matching process, so learned and
  exact models see identical corruption;
* :mod:`~hiergrammar.vision.grammar_diffusion.objectives`: their training objectives (the
  continuous-time masked ELBO of MDLM/MD4; the ``x_0``-prediction cross-entropy);
* :mod:`~hiergrammar.vision.grammar_diffusion.models`: a bidirectional transformer and a
  tree-matched U-Net (stride-``s`` convolutions down to the root and back, with skips);
* :mod:`~hiergrammar.vision.grammar_diffusion.train`: seeded, resumable training through
  ``accelerate`` (one CPU process, or many GPUs under ``accelerate launch``), checkpoints in
  :mod:`~hiergrammar.vision.grammar_diffusion.checkpointing` (safetensors + JSON);
* :mod:`~hiergrammar.vision.grammar_diffusion.denoisers`: ``LearnedDenoiser`` and
  ``ExactDenoiser`` (BP marginals of the leaves), both ``denoiser(x_t, t) -> logits``;
* :mod:`~hiergrammar.vision.grammar_diffusion.sampler`: one reverse process for both;
* :mod:`~hiergrammar.vision.grammar_diffusion.measure`: denoising loss gaps, forward-backward
  (accepted fraction, per-level fraction unchanged, class transition time), generation
  (validity per level, copies of the training set);
* the command ``hiergrammar vision train-grammar`` is :mod:`hiergrammar.cli.vision_train_grammar`.

The figure step ``learned_vs_exact`` of ``hiergrammar reproduce``
(:mod:`hiergrammar.figures.learned_vs_exact`) runs the masked family with both architectures.
"""

__all__: list[str] = []
