"""Training image encoders on open_clip towers: what CLIP / SigLIP (:mod:`embedsearch.train.image.clip`) and
SimCLR (:mod:`embedsearch.train.image.simclr`) share: settings, decoded images, augmentation, towers by name and
the image run."""
