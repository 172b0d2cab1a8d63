"""Training text encoders: ``train_text`` (:mod:`embedsearch.train.text.trainer`) and what it reads, batches,
embeds and optimises."""
