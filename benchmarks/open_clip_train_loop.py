"""The other side of bench_train_clip.py's throughput comparison: open_clip_train's own ``train_one_epoch``, set
up as its ``main.py`` sets it up for this model (fp32, one process, no gradient accumulation): open_clip's
``CustomTextCLIP`` with ``lock_text_tower``, ``create_loss``, AdamW groups and ``cosine_lr``, fed by an in-memory
loader that yields (augmented images, tokenized captions) batches with ``train_clip``'s per-sample augmentation.
Runs in the benchmark's child process (``throughput-open_clip``).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace


def throughput_open_clip(spec: dict) -> dict:
    """``spec["throughput_steps"]`` batches of open_clip_train's ``train_one_epoch`` on the first images of the
    3-vendor training pairs, with ``ClipTrainConfig``'s default model, batch, learning rate and augmentation."""
    import open_clip

    if spec["open_clip_train_src"]:
        sys.path.insert(0, spec["open_clip_train_src"])
    import open_clip_train
    from open_clip_train.scheduler import cosine_lr
    from open_clip_train.train import train_one_epoch

    from embedsearch.runtime import use_batch_threads
    from embedsearch.train import ClipTrainConfig

    use_batch_threads()
    config = ClipTrainConfig(pairs=spec["train_3vendors"], out=Path(spec["work"]) / "unused", seed=spec["seed"])
    steps = spec["throughput_steps"]
    model, loader = _model_and_loader(config, steps)
    args = _main_py_args(config)
    optimizer = _main_py_optimizer(model, config)
    scheduler = cosine_lr(optimizer, config.lr, math.floor(config.warmup * steps), steps)
    loss = open_clip.create_loss(args)
    data = {"train": SimpleNamespace(dataloader=loader, set_epoch=lambda epoch: None)}
    start = time.perf_counter()
    train_one_epoch(model, data, loss, 0, optimizer, None, scheduler, None, args)
    seconds = time.perf_counter() - start
    return {
        "steps": loader.served,
        "batch_size": config.batch_size,
        "samples_per_s": loader.served * config.batch_size / seconds,
        "loop_s": seconds,
        "open_clip_train": str(Path(open_clip_train.__file__).parent),
    }


def _model_and_loader(config, steps: int):
    """The untrained model ``train_clip`` would build (text tower locked as main.py locks it) and a loader of the
    first ``batch_size * steps`` training images, decoded once."""
    import torch

    from embedsearch.data.image_pairs import read_image_pairs
    from embedsearch.train.image.augment import TrainAugment
    from embedsearch.train.image.cache import decode_images
    from embedsearch.train.image.clip.model import lock_text_tower, model_of, tokenizer_of

    torch.manual_seed(config.seed)
    built = model_of(config)
    model = built.model
    model.output_dict = True  # as main.py creates it
    lock_text_tower(model, config.unlocked_layers)  # model.lock_text_tower(unlocked_layers=0, ...)
    pairs = read_image_pairs(config.pairs)
    count = config.batch_size * steps
    pixels = decode_images(pairs.images[:count], built.image_size).pixels
    tokens = tokenizer_of(built.model_cfg)([pairs.captions[t[0]] for t in pairs.image_to_texts[:count]])
    preprocess = built.preprocess_cfg
    augment = TrainAugment(
        built.image_size,
        preprocess["mean"],
        preprocess["std"],
        crop_scale=config.crop_scale,
        hflip=config.hflip,
        jitter=config.jitter,
        hue=config.hue,
        grayscale=config.grayscale,
    )
    return model, InMemoryLoader(pixels, tokens, augment, config.batch_size, steps, config.seed)


def _main_py_args(config) -> SimpleNamespace:
    """The ``args`` that ``train_one_epoch`` and ``create_loss`` read, as main.py's defaults for one process."""
    return SimpleNamespace(
        device="cpu",
        precision="fp32",
        distill=False,
        accum_freq=1,
        skip_scheduler=False,
        grad_clip_norm=config.max_grad_norm,
        horovod=False,
        log_every_n_steps=100,
        batch_size=config.batch_size,
        world_size=1,
        rank=0,
        local_rank=0,
        distributed=False,
        wandb=False,
        model=config.model,
        local_loss=False,
        gather_with_grad=False,
        siglip=config.loss == "siglip",
        loss_dist_impl=None,
    )


def _main_py_optimizer(model, config):
    """AdamW with main.py's groups: no weight decay on gains, biases, norms and the temperature."""
    import torch

    def exclude(name: str, param: torch.Tensor) -> bool:
        return param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": config.weight_decay},
    ]
    # open_clip_train's betas and eps for a non-ViT model (params.get_default_params)
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999), eps=1e-8)


class InMemoryLoader:
    """What ``train_one_epoch`` reads from ``data["train"].dataloader``: ``num_batches``, ``num_samples`` and
    batches of (augmented normalised images, tokenized captions), seeded shuffles of the decoded images, with the
    same per-sample augmentation as ``train_clip``."""

    def __init__(self, pixels, tokens, augment, batch: int, steps: int, seed: int) -> None:
        self.pixels, self.tokens, self.augment = pixels, tokens, augment
        self.batch, self.num_batches, self.seed = batch, steps, seed
        self.num_samples = batch * steps
        self.served = 0

    def __iter__(self):
        import numpy as np

        from embedsearch.train.image.augment import sample_seeds

        per_epoch = max(1, len(self.pixels) // self.batch)
        for step in range(self.num_batches):
            epoch, place = divmod(step, per_epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.pixels))
            rows = order[place * self.batch : (place + 1) * self.batch].tolist()
            images = self.augment(self.pixels[rows], sample_seeds(self.seed, step, len(rows)))
            self.served += 1
            yield images, self.tokens[rows]
