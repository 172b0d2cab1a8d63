"""Image–text training, CLIP or SigLIP loss: ``train_clip`` (:mod:`embedsearch.train.image.clip.trainer`)."""
