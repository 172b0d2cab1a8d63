"""Self-supervised image training on an image folder, SimCLR: ``train_simclr``
(:mod:`embedsearch.train.image.simclr.trainer`)."""
