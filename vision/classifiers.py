"""The ImageNet classifiers of the paper's probe (section 2.3, appendix D), loaded offline.

Four torchvision architectures, each with the layer list the paper hooks, in depth order:

* ``convnext_base`` (Fig. 2, right): the stem ``features.0``, every ConvNeXt block of the four
  stages (``features.1.0`` … ``features.7.2``), the downsampling layers ``features.2/4/6`` and
  the logits ``classifier`` -- 41 layers.
* ``resnet50``, ``wide_resnet50_2``, ``resnet152`` (Fig. 16): the stem (its last module,
  ``maxpool``, whose output is the stem's post-activation), every bottleneck block
  ``layer1.0`` …, the pooled features ``avgpool`` and the logits ``fc``.

Weights come from local files only, never from the network: torchvision's cache
(``torch.hub.get_dir()/checkpoints/<file name of the weights' url>``) or an explicit path. The
weights are the torchvision ones whose ImageNet top-5 accuracies the paper quotes: ConvNeXt-Base
``IMAGENET1K_V1`` (96.9%), ResNet-50 / Wide ResNet-50-2 / ResNet-152 ``IMAGENET1K_V2`` (95.4%,
95.8%, 96.0%).

Preprocessing follows the paper: generated images in ``[-1, 1]`` are mapped to ``uint8`` and then
go through the weights' own transforms (``weights.transforms()``: resize, centre crop, normalise).

Example (no weights needed to inspect the layers)::

    >>> from hiergrammar.vision.classifiers import classifier_layers
    >>> layers = classifier_layers("convnext_base")
    >>> len(layers), layers[:3], layers[-1]
    (41, ['features.0', 'features.1.0', 'features.1.1'], 'classifier')
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily so that importing the layer lists stays cheap
    import torch


@dataclass(frozen=True)
class ClassifierSpec:
    """How to build one paper classifier: torchvision builder, weights, block counts."""

    builder: str  # function name in torchvision.models
    weights_enum: str  # Weights enum class name in torchvision.models
    weights_member: str  # the member the paper's accuracies correspond to
    family: str  # "convnext" or "resnet"
    blocks: tuple[int, ...]  # blocks per stage, as in the torchvision builder


CLASSIFIERS: dict[str, ClassifierSpec] = {
    "convnext_base": ClassifierSpec(
        "convnext_base", "ConvNeXt_Base_Weights", "IMAGENET1K_V1", "convnext", (3, 3, 27, 3)
    ),
    "resnet50": ClassifierSpec(
        "resnet50", "ResNet50_Weights", "IMAGENET1K_V2", "resnet", (3, 4, 6, 3)
    ),
    "wide_resnet50_2": ClassifierSpec(
        "wide_resnet50_2", "Wide_ResNet50_2_Weights", "IMAGENET1K_V2", "resnet", (3, 4, 6, 3)
    ),
    "resnet152": ClassifierSpec(
        "resnet152", "ResNet152_Weights", "IMAGENET1K_V2", "resnet", (3, 8, 36, 3)
    ),
}


def classifier_names() -> list[str]:
    """Names of the paper's classifiers, e.g. ``['convnext_base', 'resnet50', ...]``."""
    return list(CLASSIFIERS)


def _spec(name: str) -> ClassifierSpec:
    if name not in CLASSIFIERS:
        raise ValueError(f"classifier={name!r} is not one of {classifier_names()}")
    return CLASSIFIERS[name]


def classifier_layers(name: str) -> list[str]:
    """The paper's hooked layers of classifier ``name``, ordered from input to logits.

    The position in the list is the depth order used to colour the curves; the last entry is
    the logits layer.

    >>> classifier_layers("resnet50")[:3], classifier_layers("resnet50")[-2:]
    (['maxpool', 'layer1.0', 'layer1.1'], ['avgpool', 'fc'])
    """
    spec = _spec(name)
    layers: list[str] = []
    if spec.family == "convnext":
        # features = [stem, stage1, down1, stage2, down2, stage3, down3, stage4]
        layers.append("features.0")
        for stage, n_blocks in enumerate(spec.blocks):
            index = 2 * stage + 1
            layers += [f"features.{index}.{b}" for b in range(n_blocks)]
            if stage < len(spec.blocks) - 1:
                layers.append(f"features.{index + 1}")
        layers.append("classifier")
    else:
        layers.append("maxpool")
        for stage, n_blocks in enumerate(spec.blocks):
            layers += [f"layer{stage + 1}.{b}" for b in range(n_blocks)]
        layers += ["avgpool", "fc"]
    return layers


def logits_layer(name: str) -> str:
    """The layer whose output is the logits (``classifier`` or ``fc``)."""
    return classifier_layers(name)[-1]


def classifier_weights(name: str) -> Any:
    """The torchvision ``Weights`` enum member the paper used for ``name``."""
    import torchvision.models as tvm

    spec = _spec(name)
    return getattr(getattr(tvm, spec.weights_enum), spec.weights_member)


def weights_url(name: str) -> str:
    """Where torchvision downloads the weights of ``name`` from (for the error message)."""
    return classifier_weights(name).url


def default_weights_path(name: str) -> Path:
    """``torch.hub.get_dir()/checkpoints/<file name of the url>``, torchvision's cache file."""
    import torch.hub

    file_name = os.path.basename(weights_url(name))
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def build_classifier(name: str) -> torch.nn.Module:
    """The torchvision architecture ``name``, random weights (``weights=None``), eval mode."""
    import torchvision.models as tvm

    model = getattr(tvm, _spec(name).builder)(weights=None)
    return model.eval()


def imagenet_preprocess(weights: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Preprocessing of the paper: ``[-1, 1]`` -> uint8 -> ``weights.transforms()``.

    The returned callable takes a batch ``(n, 3, H, W)`` (float in ``[-1, 1]`` or uint8) and
    returns the normalised float batch ``(n, 3, 224, 224)``.
    """
    transform = weights.transforms()

    def preprocess(images: torch.Tensor) -> torch.Tensor:
        from hiergrammar.vision.data import to_uint8

        return transform(to_uint8(images))

    return preprocess


def load_classifier(
    name: str, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """Load a paper classifier from a local weights file; return ``(model, preprocess)``.

    ``weights`` is a path to the torchvision state dict; ``None`` looks in torchvision's cache
    (:func:`default_weights_path`). Nothing is downloaded: a missing file raises
    :class:`FileNotFoundError` naming the file, where to put it and the URL it comes from.
    The model is in eval mode on ``device``.
    """
    import torch

    spec_weights = classifier_weights(name)
    path = Path(weights) if weights is not None else default_weights_path(name)
    if not path.is_file():
        cache = default_weights_path(name)
        raise FileNotFoundError(
            f"weights for {name} not found at {path}: download {spec_weights.url} "
            f"and put the file at {cache} (torchvision's cache, used by default), "
            f"or pass its location with --weights PATH"
        )
    model = build_classifier(name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), imagenet_preprocess(spec_weights)


def load_module_file(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Load a whole ``torch.nn.Module`` saved with ``torch.save(model, path)``.

    This is how a small custom classifier (a test model, the RHM CNN) goes through the probe
    CLI. Unpickling runs code from the file, so only load files you made yourself.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"module file {path} does not exist")
    model = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a torch.nn.Module")
    return model.to(device).eval()


def default_layers(model: torch.nn.Module) -> list[str]:
    """Layers of a custom module when none are given: its direct children, in order."""
    names = [name for name, _ in model.named_children()]
    if not names:
        raise ValueError("the module has no named children; pass the layers to hook explicitly")
    return names
