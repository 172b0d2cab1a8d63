"""Toy image data for the image trainers' tests: tiny two-colour flags (left half one colour, right half
another: a learnable signal in which order matters, so flips would change the meaning) in every format the
trainers must read, written with PIL into a test's folder.

Each ordered pair of :data:`COLOURS` is drawn by three "vendors" (as the emoji set has three vendors' drawings of
one emoji): an RGB PNG, an RGBA PNG whose transparent margin must come out white, and a JPEG or a palette GIF,
in three sizes. All three share the caption ``"<left> <right>"``; the first vendor's flag also has the caption
``"flag of <left> and <right>"`` (an image with two captions). Held-out captions are new combinations of
colours seen in training.
"""

from __future__ import annotations

import json
from itertools import permutations
from pathlib import Path

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 20),
    "black": (10, 10, 10),
    "white": (250, 250, 250),
}
FLAGS = list(permutations(COLOURS, 2))  # 30 ordered pairs


def flag(left: str, right: str, size: tuple[int, int], mode: str = "RGB"):
    """A PIL image: the left half ``left``, the right half ``right``."""
    from PIL import Image

    width, height = size
    picture = Image.new(mode, size, COLOURS[right] + ((255,) if mode == "RGBA" else ()))
    picture.paste(Image.new(mode, (width // 2, height), COLOURS[left] + ((255,) if mode == "RGBA" else ())))
    return picture


def write_colour_images(folder: Path) -> list[dict]:
    """Write 90 flags under ``folder/images`` and return their 120 pairs (paths relative to ``folder``)."""
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    pairs = []
    for index, (left, right) in enumerate(FLAGS):
        name = f"{left}-{right}"
        flag(left, right, (20, 20)).save(folder / "images" / f"{name}-a.png")
        framed = Image.new("RGBA", (24, 18), (0, 0, 0, 0))
        framed.paste(flag(left, right, (16, 12), "RGBA"), (4, 3))
        framed.save(folder / "images" / f"{name}-b.png")
        third = f"{name}-c.gif" if index % 3 == 0 else f"{name}-c.jpg"
        picture = flag(left, right, (32, 32))
        (picture.convert("P", palette=Image.Palette.ADAPTIVE) if third.endswith(".gif") else picture).save(
            folder / "images" / third
        )
        images = [f"images/{name}-a.png", f"images/{name}-b.png", f"images/{third}"]
        pairs += [{"image": image, "text": f"{left} {right}"} for image in images]
        pairs.append({"image": images[0], "text": f"flag of {left} and {right}"})
    return pairs


def write_pairs(path: Path, pairs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    return path


TINY_MODEL = "test-vit-tiny"
TINY_MODEL_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"layers": 1, "width": 32, "patch_size": 8, "image_size": 32, "head_width": 16},
    "text_cfg": {"width": 32, "heads": 2, "layers": 1},
}


def register_tiny_model() -> str:
    """Register :data:`TINY_MODEL` (a one-layer ViT at 32 px, no BatchNorm) through the real config registry."""
    from embedsearch.train.image.towers import OUR_MODEL_CONFIGS, register_model_config

    if TINY_MODEL not in OUR_MODEL_CONFIGS:
        register_model_config(TINY_MODEL, TINY_MODEL_CONFIG)
    return TINY_MODEL
