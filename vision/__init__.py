"""Image diffusion experiments (the only part of the project that uses torch).

Public names are loaded lazily (module ``__getattr__``) so that ``import vision`` and
``import vision.cli`` stay free of torch; ``vision.forward_backward(...)`` imports it on first
use.

* :func:`forward_backward`, :func:`forward_backward_latent` — noise images to step ``t`` of a
  respaced chain and denoise them back (``vision.pipeline``);
* :func:`load_diffusion`, :class:`DiffusionModel` — offline model loading (``vision.models``);
* :func:`convert_adm_checkpoint`, :func:`adm_config`, :func:`adm_to_diffusers` — OpenAI
  guided-diffusion checkpoints as diffusers models (``vision.adm``);
* :func:`load_image_folder`, :func:`image_folder_dataset` — start images (``vision.data``);
* :func:`sample_image_folder`, :func:`forward_backward_sharded` — multi-GPU runs
  (``vision.distributed``);
* :func:`load_classifier`, :func:`classifier_layers` — torchvision classifiers and the paper's
  layer lists (``vision.classifiers``);
* :func:`probe_similarity`, :class:`LayerRecorder`, :func:`activation_stats` — activation probes
  on any ``nn.Module`` (``vision.probes``), :func:`plot_probe` (``vision.plots``);
* :class:`TreeCNN`, :func:`train_tree_cnn`, :func:`encode`, :func:`decode` — the tree-matched
  CNN and one-hot RHM images (``vision.rhm_cnn``); :func:`probe_rhm`, :func:`run_cnn_probe` —
  the paper's Fig. 8 (``vision.rhm_probe``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "forward_backward": "vision.pipeline",
    "forward_backward_latent": "vision.pipeline",
    "image_seeds": "vision.pipeline",
    "null_class_label": "vision.pipeline",
    "start_timestep": "vision.pipeline",
    "DiffusionModel": "vision.models",
    "load_diffusion": "vision.models",
    "make_scheduler": "vision.models",
    "ADM_PRESETS": "vision.adm",
    "adm_config": "vision.adm",
    "adm_scheduler": "vision.adm",
    "adm_to_diffusers": "vision.adm",
    "convert_adm_checkpoint": "vision.adm",
    "convert_adm_state_dict": "vision.adm",
    "unet2d_config_from_adm": "vision.adm",
    "image_folder_dataset": "vision.data",
    "load_image_folder": "vision.data",
    "forward_backward_sharded": "vision.distributed",
    "process_state": "vision.distributed",
    "sample_image_folder": "vision.distributed",
    "classifier_layers": "vision.classifiers",
    "classifier_names": "vision.classifiers",
    "load_classifier": "vision.classifiers",
    "LayerRecorder": "vision.probes",
    "activation_stats": "vision.probes",
    "cosine_similarity": "vision.probes",
    "probe_similarity": "vision.probes",
    "plot_probe": "vision.plots",
    "TreeCNN": "vision.rhm_cnn",
    "train_tree_cnn": "vision.rhm_cnn",
    "encode": "vision.rhm_cnn",
    "decode": "vision.rhm_cnn",
    "leaf_values": "vision.rhm_cnn",
    "leaf_grid": "vision.rhm_cnn",
    "eps_resample": "vision.rhm_probe",
    "probe_rhm": "vision.rhm_probe",
    "probe_eps_grid": "vision.rhm_probe",
    "run_cnn_probe": "vision.rhm_probe",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'vision' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
