"""Image diffusion experiments (the only part of the project that uses torch).

Public names are loaded lazily (module ``__getattr__``) so that ``import hiergrammar.vision``
stays free of torch; ``hiergrammar.vision.forward_backward(...)`` imports it on first use. The
package holds no command-line code: the ``hiergrammar vision`` commands are in
:mod:`hiergrammar.cli.vision`.

* :func:`forward_backward`, :func:`forward_backward_latent` — noise images to step ``t`` of a
  respaced chain and denoise them back (``hiergrammar.vision.pipeline``);
* :func:`load_diffusion`, :class:`DiffusionModel` — offline model loading
  (``hiergrammar.vision.models``);
* :func:`convert_adm_checkpoint`, :func:`adm_config`, :func:`adm_to_diffusers` — OpenAI
  guided-diffusion checkpoints as diffusers models (``hiergrammar.vision.adm``);
* :func:`load_image_folder`, :func:`image_folder_dataset` — start images
  (``hiergrammar.vision.data``);
* :func:`sample_image_folder`, :func:`forward_backward_sharded` — multi-GPU runs
  (``hiergrammar.vision.distributed``);
* :func:`load_classifier`, :func:`classifier_layers` — torchvision classifiers and the paper's
  layer lists (``hiergrammar.vision.classifiers``);
* :func:`probe_similarity`, :class:`LayerRecorder`, :func:`activation_stats`, :func:`run_probe`
  — activation probes on any ``nn.Module`` (``hiergrammar.vision.probes``), :class:`ImageSet`
  — start and generated image sets (``hiergrammar.vision.image_sets``), :func:`plot_probe`
  (``hiergrammar.vision.plots``);
* :class:`TreeCNN`, :func:`train_tree_cnn`, :func:`encode`, :func:`decode`,
  :func:`save_tree_cnn`, :func:`load_tree_cnn` — the tree-matched CNN and one-hot RHM images
  (``hiergrammar.vision.rhm_cnn``); :func:`probe_rhm`, :func:`probe_eps_grid` — the
  measurements of the paper's Fig. 8 (``hiergrammar.vision.rhm_probe``; its figure step is
  ``hiergrammar.figures.cnn_probe``);
* :func:`load_state_dict`, :func:`save_module`, :func:`load_module`,
  :func:`register_architecture` — weights and module folders loaded without unpickling
  anything (``hiergrammar.vision.checkpoints``); :func:`resolve_device` — one check of a
  ``device`` argument (``hiergrammar.vision.device``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "forward_backward": "hiergrammar.vision.pipeline",
    "forward_backward_latent": "hiergrammar.vision.pipeline",
    "image_seeds": "hiergrammar.vision.pipeline",
    "null_class_label": "hiergrammar.vision.pipeline",
    "start_timestep": "hiergrammar.vision.pipeline",
    "DiffusionModel": "hiergrammar.vision.models",
    "load_diffusion": "hiergrammar.vision.models",
    "make_scheduler": "hiergrammar.vision.models",
    "ADM_PRESETS": "hiergrammar.vision.adm",
    "adm_config": "hiergrammar.vision.adm",
    "adm_scheduler": "hiergrammar.vision.adm",
    "adm_to_diffusers": "hiergrammar.vision.adm",
    "convert_adm_checkpoint": "hiergrammar.vision.adm",
    "convert_adm_state_dict": "hiergrammar.vision.adm",
    "unet2d_config_from_adm": "hiergrammar.vision.adm",
    "image_folder_dataset": "hiergrammar.vision.data",
    "load_image_folder": "hiergrammar.vision.data",
    "forward_backward_sharded": "hiergrammar.vision.distributed",
    "process_state": "hiergrammar.vision.distributed",
    "sample_image_folder": "hiergrammar.vision.distributed",
    "classifier_layers": "hiergrammar.vision.classifiers",
    "classifier_names": "hiergrammar.vision.classifiers",
    "load_classifier": "hiergrammar.vision.classifiers",
    "load_module_folder": "hiergrammar.vision.classifiers",
    "load_state_dict": "hiergrammar.vision.checkpoints",
    "load_module": "hiergrammar.vision.checkpoints",
    "save_module": "hiergrammar.vision.checkpoints",
    "register_architecture": "hiergrammar.vision.checkpoints",
    "resolve_device": "hiergrammar.vision.device",
    "LayerRecorder": "hiergrammar.vision.probes",
    "activation_stats": "hiergrammar.vision.probes",
    "cosine_similarity": "hiergrammar.vision.probes",
    "probe_similarity": "hiergrammar.vision.probes",
    "run_probe": "hiergrammar.vision.probes",
    "ImageSet": "hiergrammar.vision.image_sets",
    "plot_probe": "hiergrammar.vision.plots",
    "TreeCNN": "hiergrammar.vision.rhm_cnn",
    "train_tree_cnn": "hiergrammar.vision.rhm_cnn",
    "save_tree_cnn": "hiergrammar.vision.rhm_cnn",
    "load_tree_cnn": "hiergrammar.vision.rhm_cnn",
    "encode": "hiergrammar.vision.rhm_cnn",
    "decode": "hiergrammar.vision.rhm_cnn",
    "leaf_values": "hiergrammar.vision.rhm_cnn",
    "leaf_grid": "hiergrammar.vision.rhm_cnn",
    "eps_resample": "hiergrammar.vision.rhm_probe",
    "probe_rhm": "hiergrammar.vision.rhm_probe",
    "probe_eps_grid": "hiergrammar.vision.rhm_probe",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'hiergrammar.vision' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
