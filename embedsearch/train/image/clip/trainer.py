"""``train_clip``: contrastive image–text training (CLIP or SigLIP) of an open_clip model.

The losses are open_clip's own: ``ClipLoss`` (CLIP: Radford et al., "Learning Transferable Visual Models From
Natural Language Supervision", 2021; symmetric InfoNCE, learnable temperature) gathers every process's
features with their gradients and computes the loss of the whole global batch in every process;
``SigLipLoss`` (SigLIP: Zhai et al., "Sigmoid Loss for Language Image Pre-Training", 2023; learnable
temperature and bias) passes text features from process to process and sums the sigmoid losses of this
process's images against every text, divided by this process's share of the batch. So under ``W`` processes
SigLIP's per-process losses differ, and their mean (what is logged) is the one-process loss of the global
batch; averaging gradients over processes gives its gradients.

With a locked pretrained text tower (LiT) no text weight trains, so each distinct caption is embedded once,
before the first step, and a step runs only the image tower.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from embedsearch.encoders.open_clip_model import pad_id, trim_padding
from embedsearch.metrics import image_text_recall
from embedsearch.train.batching import EpochPlan
from embedsearch.train.distributed import init_from_env, shutdown
from embedsearch.train.image.augment import Normalise, sample_seeds
from embedsearch.train.image.clip.batches import caption_batches
from embedsearch.train.image.clip.config import ClipTrainConfig
from embedsearch.train.image.clip.data import load_clip_data
from embedsearch.train.image.clip.loss import MixPlan, clip_loss
from embedsearch.train.image.clip.model import lock_text_tower, model_of, text_tower_folder, tokenizer_of
from embedsearch.train.image.run import BEST_METRIC, ImageRun
from embedsearch.train.image.towers import BuiltModel, vision_config
from embedsearch.train.loop import StepReport
from embedsearch.train.settings import TrainResult

ENCODE_BATCH = 256
RECALLS = tuple(f"{way}_R@{k}" for way in ("image_to_text", "text_to_image") for k in (1, 5, 10))


def train_clip(config: ClipTrainConfig, on_step: Callable[[StepReport], None] | None = None) -> TrainResult:
    """Train an image–text model as ``config`` says and write it to ``config.out``.

    ``config.out`` ends up holding an open_clip model directory that ``get_encoder(str(out))`` loads (the best
    by validation mean Recall@1/5/10, or the last step without validation), ``training_card.json`` and
    ``training_curves.png``; nothing is written there before the end. Raises :class:`SourceError` for a
    malformed pairs file or missing images, :class:`InvalidInputError` for bad settings or too few images for a
    batch, :class:`UnknownEncoderError` for a text tower that cannot be loaded, :class:`OutputExistsError` for
    an existing output without ``overwrite``, :class:`TrainingError` for a diverging loss or a checkpoint of
    other settings or data. Unreadable images are skipped with a warning and counted.
    """
    cluster = init_from_env(config.device)
    try:
        return ClipRun(config, cluster, on_step).run()
    finally:
        shutdown(cluster)


class ClipRun(ImageRun):
    """One CLIP / SigLIP run; see :func:`train_clip`."""

    config: ClipTrainConfig
    modalities = ("image", "text")
    plotted_metrics = (*RECALLS, BEST_METRIC)

    def _prepare(self) -> None:
        config = self.config
        self.kind, self.loss_name = config.loss, {"clip": "CLIP loss", "siglip": "SigLIP loss"}[config.loss]
        vision, _, _ = vision_config(config.model, config.image_size)
        text_tower_folder(config.text_tower)  # fail on a bad reference before decoding anything
        self.data = load_clip_data(config, vision["image_size"])
        self.fingerprint, self.has_val = self.data.fingerprint, self.data.val is not None
        self.plan = self._plan()
        self.built = self._build_model()
        self.tokens = tokenizer_of(self.built.model_cfg)(self.data.captions)
        self.text_features = self._embed_all_captions() if config.text_frozen else None
        self.augment = self.train_augment()
        self.normalise = Normalise(self.built.preprocess_cfg["mean"], self.built.preprocess_cfg["std"])
        self.loss_fn = clip_loss(config.loss, self.cluster, soft=config.soft_loss)
        self.bank, self.bank_rows = self._caption_bank() if config.all_negatives else (None, None)

    def _build_model(self) -> BuiltModel:
        config = self.config
        torch.manual_seed(config.seed)
        built = model_of(config)
        if config.text_locked:
            lock_text_tower(built.model, config.unlocked_layers)
        built.model.to(self.device)
        return built

    def _plan(self) -> EpochPlan:
        config, train = self.config, self.data.train

        def batches_of(epoch: int) -> list[list[tuple[int, int]]]:
            batches = caption_batches(train.image_to_texts, config.batch_size, config.seed, epoch)
            return [[(train.rows[i], caption) for i, caption in batch] for batch in batches]

        try:
            return EpochPlan(batches_of, config.epochs, config.max_steps)
        except ValueError:
            held = len(self.data.val.rows) if self.data.val and config.val is None else 0
            raise self.too_few(len(train.rows), held, "images and captions") from None

    @property
    def _text_frozen(self) -> bool:
        return self.text_features is not None

    def _train_mode(self) -> None:
        self.model.train()
        if self.config.text_locked and hasattr(self.model, "text"):
            self.model.text.eval()  # a locked tower, its unlocked top layers included, runs without dropout

    def _embed_all_captions(self) -> torch.Tensor:
        """Normalised features ``(n_captions, dim)`` of every distinct caption by the frozen text tower, embedded
        in batches of similar length (cut to their longest caption: see :func:`trim_padding`)."""
        model = self.built.model.eval()
        pad = pad_id(model)
        order = torch.argsort((self.tokens != pad).sum(1), descending=True, stable=True)
        features = None
        with torch.inference_mode():
            for start in tqdm(
                range(0, len(order), ENCODE_BATCH), desc="embedding captions", disable=self.quiet, file=sys.stderr
            ):
                chunk = order[start : start + ENCODE_BATCH]
                tokens = trim_padding(self.tokens[chunk], pad).to(self.device)
                part = F.normalize(model.encode_text(tokens), dim=-1)
                if features is None:
                    features = torch.empty((len(order), part.shape[1]), dtype=part.dtype, device=part.device)
                features[chunk.to(part.device)] = part
        return features

    def _caption_bank(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The image->text negatives when every training caption is one: the training captions' frozen features,
        and for every caption its row among them (-1 for a validation caption)."""
        train = torch.tensor(self.data.train.captions)
        rows = torch.full((len(self.data.captions),), -1, dtype=torch.long)
        rows[train] = torch.arange(len(train))
        return self.text_features[train.to(self.text_features.device)], rows

    def _loss(self, batch: list[tuple[int, int]], step: int) -> tuple[torch.Tensor, int]:
        config, share = self.config, self.local_share(batch)
        rows = torch.tensor([row for row, _ in batch])
        captions = torch.tensor([caption for _, caption in batch])
        seeds = sample_seeds(config.seed, step, len(batch))
        pixels = self.augment(self.data.cache.pixels[rows[share]], seeds[share])
        plan = MixPlan.draw(config.mixup_alpha, config.seed, step, len(batch))
        if config.mixup_alpha > 0:
            partners = plan.partner[share]
            if self.cluster.world == 1:  # every partner's view is in this batch already
                partner_pixels = pixels[partners]
            else:  # the same view the partner's process makes: its image, its seed
                chosen = partners.tolist()
                partner_pixels = self.augment(self.data.cache.pixels[rows[chosen]], [seeds[p] for p in chosen])
            pixels = plan.mix(pixels, partner_pixels, share)
        image_features = F.normalize(self.model.encode_image(self.as_input(pixels)), dim=-1)
        text_features = self._text_features(captions[share])
        scale = self.model.logit_scale.exp()
        if config.loss == "siglip":
            return self.loss_fn(image_features, text_features, scale, self.model.logit_bias), len(batch)
        if not config.soft_loss:
            return self.loss_fn(image_features, text_features, scale), len(batch)
        bank_index = None if self.bank_rows is None else self.bank_rows[captions]
        return self.loss_fn(image_features, text_features, scale, plan, self.bank, bank_index), len(batch)

    def _text_features(self, captions: torch.Tensor) -> torch.Tensor:
        if self._text_frozen:
            return self.text_features[captions.to(self.text_features.device)]
        tokens = trim_padding(self.tokens[captions], pad_id(self.model))
        return F.normalize(self.model.encode_text(tokens.to(self.device)), dim=-1)

    def _metrics(self) -> dict[str, float]:
        val = self.data.val
        captions = val.captions
        column = {caption: i for i, caption in enumerate(captions)}
        images = self._embed_images(val.rows)
        ids = torch.tensor(captions)
        texts = torch.cat([self._text_features(part).float().cpu() for part in ids.split(ENCODE_BATCH)]).numpy()
        metrics = image_text_recall(images, texts, [[column[t] for t in texts_] for texts_ in val.image_to_texts])
        return {**metrics, BEST_METRIC: float(np.mean([metrics[name] for name in RECALLS]))}

    def _embed_images(self, rows: list[int]) -> np.ndarray:
        """Normalised float32 ``(len(rows), dim)`` features of cached images (no augmentation)."""
        parts = []
        for start in range(0, len(rows), ENCODE_BATCH):
            pixels = self.as_input(self.normalise(self.data.cache.pixels[rows[start : start + ENCODE_BATCH]]))
            parts.append(F.normalize(self.model.encode_image(pixels).float(), dim=-1).cpu().numpy())
        return np.concatenate(parts)

    def skipped_images(self) -> int:
        return len(self.data.cache.skipped)

    def _text_tower_source(self) -> Path | None:
        return self.built.text_tower_source

    def _describe_data(self) -> dict[str, Any]:
        return {
            **self.data.describe(),
            "text_tower": {
                "reference": self.config.text_tower,
                "path": None if self.built.text_tower_source is None else str(self.built.text_tower_source),
                "locked": self.config.text_locked,
                "unlocked_layers": self.config.unlocked_layers,
                "features_cached": self._text_frozen,
            },
            "loss": {
                "kind": self.config.loss,
                "mixup": self.config.mixup_alpha,
                "negatives": "every training caption" if self.config.all_negatives else "the batch's captions",
            },
        }
