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

Weights files are read without unpickling Python objects (safetensors, or a state dict read
with ``torch.load(weights_only=True)``; see :mod:`hiergrammar.vision.checkpoints`). Other
classifiers, such as the RHM CNN, are module folders (an architecture name plus safetensors
weights) loaded with :func:`load_module_folder`; a whole pickled module is never loaded.

Examples
--------
No weights are needed to inspect the layers:

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

from hiergrammar.validation import InputError

if TYPE_CHECKING:  # torch is imported lazily so that importing the layer lists stays cheap
    import torch

__all__ = [
    "ClassifierSpec",
    "CLASSIFIERS",
    "classifier_names",
    "classifier_layers",
    "logits_layer",
    "classifier_weights",
    "weights_url",
    "default_weights_path",
    "build_classifier",
    "imagenet_preprocess",
    "load_classifier",
    "load_module_folder",
    "default_layers",
]


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
    """Names of the paper's classifiers.

    Examples
    --------
    >>> classifier_names()
    ['convnext_base', 'resnet50', 'wide_resnet50_2', 'resnet152']
    """
    return list(CLASSIFIERS)


def _spec(name: str) -> ClassifierSpec:
    if not isinstance(name, str) or name not in CLASSIFIERS:
        raise InputError(f"classifier={name!r} is not one of {classifier_names()}")
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
    """The layer whose output is the logits (``classifier`` or ``fc``).

    Examples
    --------
    >>> logits_layer("convnext_base"), logits_layer("resnet152")
    ('classifier', 'fc')
    """
    return classifier_layers(name)[-1]


def classifier_weights(name: str) -> Any:
    """The torchvision ``Weights`` enum member the paper used for ``name``.

    Examples
    --------
    >>> classifier_weights("resnet50").name
    'IMAGENET1K_V2'
    """
    import torchvision.models as tvm

    spec = _spec(name)
    return getattr(getattr(tvm, spec.weights_enum), spec.weights_member)


def weights_url(name: str) -> str:
    """Where torchvision downloads the weights of ``name`` from (for the error message).

    Examples
    --------
    >>> weights_url("resnet50")
    'https://download.pytorch.org/models/resnet50-11ad3fa6.pth'
    """
    return classifier_weights(name).url


def default_weights_path(name: str) -> Path:
    """``torch.hub.get_dir()/checkpoints/<file name of the url>``, torchvision's cache file.

    Examples
    --------
    >>> default_weights_path("resnet50").name
    'resnet50-11ad3fa6.pth'
    """
    import torch.hub

    file_name = os.path.basename(weights_url(name))
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def build_classifier(name: str) -> torch.nn.Module:
    """The torchvision architecture ``name``, random weights (``weights=None``), eval mode.

    Examples
    --------
    >>> build_classifier("resnet50").fc.out_features
    1000
    """
    import torchvision.models as tvm

    model = getattr(tvm, _spec(name).builder)(weights=None)
    return model.eval()


def imagenet_preprocess(weights: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Preprocessing of the paper: ``[-1, 1]`` -> uint8 -> ``weights.transforms()``.

    The returned callable takes a batch ``(n, 3, H, W)`` (float in ``[-1, 1]`` or uint8) and
    returns the normalised float batch ``(n, 3, 224, 224)``.

    Examples
    --------
    >>> import torch
    >>> preprocess = imagenet_preprocess(classifier_weights("resnet50"))
    >>> tuple(preprocess(torch.zeros(2, 3, 64, 64)).shape)
    (2, 3, 224, 224)
    """
    transform = weights.transforms()

    def preprocess(images: torch.Tensor) -> torch.Tensor:
        from hiergrammar.vision.data import to_uint8

        return transform(to_uint8(images))

    return preprocess


def load_classifier(
    name: str,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = "cpu",
) -> tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """Load a paper classifier from a local weights file; return ``(model, preprocess)``.

    Parameters
    ----------
    name : one of :func:`classifier_names`.
    weights : the torchvision state dict (``.pth``, read with ``weights_only=True``) or a
        safetensors file; ``None`` looks in torchvision's cache (:func:`default_weights_path`).
    device : where to put the model (``None``: CUDA if available, else CPU).

    Returns
    -------
    ``(model, preprocess)``: the model in eval mode on ``device``, and the callable mapping
    ``(n, 3, H, W)`` images in ``[-1, 1]`` to its ``(n, 3, 224, 224)`` input.

    Raises
    ------
    InputError
        Nothing is downloaded: a missing file raises :class:`MissingFileError` (an
        ``InputError`` and a ``FileNotFoundError``) naming the file, where to put it and the URL
        it comes from. A file that is not a state dict of this architecture (corrupt, holding
        Python objects, other tensor names or shapes) raises ``InputError`` naming it.

    Examples
    --------
    >>> try:
    ...     load_classifier("resnet50", "/nowhere/resnet50.pth")
    ... except FileNotFoundError as err:  # nothing is downloaded
    ...     print(str(err)[:55])
    weights for resnet50 not found at /nowhere/resnet50.pth
    """
    from hiergrammar.vision.checkpoints import (
        MissingFileError,
        load_state_dict,
        load_weights,
    )
    from hiergrammar.vision.device import resolve_device

    target = resolve_device(device)
    spec_weights = classifier_weights(name)
    path = Path(weights) if weights is not None else default_weights_path(name)
    if not path.exists():
        cache = default_weights_path(name)
        raise MissingFileError(
            f"weights for {name} not found at {path}: download {spec_weights.url} "
            f"and put the file at {cache} (torchvision's cache, used by default), "
            f"or pass its location with --weights PATH"
        )
    state = load_state_dict(path, f"weights file of {name}")
    model = load_weights(build_classifier(name), state, path, name)
    return model.to(target).eval(), imagenet_preprocess(spec_weights)


def load_module_folder(
    folder: str | os.PathLike, device: str | torch.device | None = "cpu"
) -> torch.nn.Module:
    """A custom classifier from a module folder (architecture name + safetensors weights).

    This is how a small classifier (the RHM CNN saved with
    :func:`hiergrammar.vision.rhm_cnn.save_tree_cnn`, or any model saved with
    :func:`hiergrammar.vision.checkpoints.save_module`) goes through the probe CLI. The model is
    rebuilt from its architecture's code; nothing is unpickled. Eval mode, on ``device``.

    Examples
    --------
    >>> import tempfile
    >>> from hiergrammar.vision.rhm_cnn import TreeCNN, save_tree_cnn
    >>> folder = save_tree_cnn(TreeCNN(4, 2, 2, 2, width=8), tempfile.mkdtemp() + "/cnn")
    >>> type(load_module_folder(folder)).__name__
    'TreeCNN'
    """
    from hiergrammar.vision.checkpoints import load_module

    return load_module(folder, device=device)


def default_layers(model: torch.nn.Module) -> list[str]:
    """Layers of a custom module when none are given: its direct children, in order.

    Examples
    --------
    >>> import torch
    >>> default_layers(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))
    ['0', '1']
    """
    names = [name for name, _ in model.named_children()]
    if not names:
        raise InputError("the module has no named children; pass the layers to hook explicitly")
    return names
