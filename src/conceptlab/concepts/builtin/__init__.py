"""The built-in vocabularies by name: the reviewed files shipped here, ImageNet-1k and CUB.

Files (text format of :mod:`conceptlab.concepts.vocab`: ``[class]`` headers, one concept a line):
``fashion_mnist.txt``, ``cifar10.txt``, ``cifar100.txt``, reviewed and hand-written;
``parts_attributes.txt``, a class-free list of parts, colours, textures, materials and shapes
(each group's source in the file), the vocabulary discovered image concepts are named from. Each
concept is a visual attribute a person can check in the image (shape, part, texture, colour,
context), never the class name. ``imagenet`` is built from the packaged descriptions
(:func:`~conceptlab.concepts.imagenet.imagenet_vocabulary`), ``cub`` read from the dataset
(:func:`~conceptlab.concepts.cub.cub_vocabulary`). Load any of them with
:func:`builtin_vocabulary`.
"""

from __future__ import annotations

import os
import re
from importlib import resources

from conceptlab.concepts.cub import cub_vocabulary
from conceptlab.concepts.imagenet import imagenet_class_names, imagenet_vocabulary
from conceptlab.concepts.vocab import Vocabulary, VocabularyError, parse_text_vocabulary

#: Official class names in label order (Fashion-MNIST: Xiao et al. 2017; CIFAR: Krizhevsky 2009,
#: CIFAR-100 fine labels as in the dataset's ``meta`` file).
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
    "cifar100": (
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle",
        "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel",
        "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
        "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
        "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
        "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
        "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
        "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
        "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
        "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose",
        "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
        "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table",
        "tank", "telephone", "television", "tiger", "tractor", "train", "trout",
        "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman",
        "worm",
    ),
}

# ---------------------------------------------------------------------------------------------
# loading by name
# ---------------------------------------------------------------------------------------------

_BUILTIN_FILES = {"fashion-mnist": "fashion_mnist.txt", "cifar10": "cifar10.txt",
                  "cifar100": "cifar100.txt", "parts-attributes": "parts_attributes.txt"}
# a name with all but [a-z0-9] dropped -> its canonical name (the values, in order, are the names)
_ALIASES = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "cifar10": "cifar10",
            "cifar100": "cifar100", "imagenet": "imagenet", "imagenet1k": "imagenet",
            "cub": "cub", "cub200": "cub", "cub2002011": "cub",
            "partsattributes": "parts-attributes", "parts": "parts-attributes"}


def builtin_vocabulary_names() -> list[str]:
    """Names that :func:`builtin_vocabulary` accepts."""
    return list(dict.fromkeys(_ALIASES.values()))


def _canonical(name: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if key not in _ALIASES:
        raise VocabularyError(f"unknown built-in vocabulary {name!r}; known: "
                              f"{', '.join(builtin_vocabulary_names())}")
    return _ALIASES[key]


def builtin_class_names(name: str) -> list[str]:
    """The official class names, in label order, that a shipped vocabulary was written for."""
    key = _canonical(name)
    if key == "imagenet":
        return imagenet_class_names()
    if key not in CLASS_NAMES:
        raise VocabularyError(f"{name!r}: class names come with the data (see cub_vocabulary)")
    return list(CLASS_NAMES[key])


def builtin_vocabulary(name: str, *, cub_path: str | os.PathLike[str] | None = None,
                       per_class: int = 8) -> Vocabulary:
    """A ready vocabulary by name: ``fashion-mnist``, ``cifar10``, ``cifar100`` (reviewed,
    hand-written files shipped with conceptlab), ``imagenet`` (built from the packaged
    descriptions, up to ``per_class`` phrases a class; see :func:`imagenet_vocabulary`) or
    ``cub`` (CUB-200-2011's 312 attribute names, read from ``cub_path``; see
    :func:`cub_vocabulary`)."""
    key = _canonical(name)
    if key == "imagenet":
        return imagenet_vocabulary(per_class=per_class)
    if key == "cub":
        if cub_path is None:
            raise VocabularyError("the CUB vocabulary is read from the dataset (CUB is not "
                                  "shipped): pass cub_path=<CUB_200_2011 folder or attributes.txt>")
        return cub_vocabulary(cub_path)
    fname = _BUILTIN_FILES[key]
    text = resources.files(__name__).joinpath(fname).read_text(encoding="utf-8")
    vocab = parse_text_vocabulary(text, source=f"builtin:{key}")
    vocab.source = f"builtin:{key}"
    return vocab

