"""Contrastive training of encoders. Imports only ``data``, ``encoders`` and ``metrics``; hands its result over
as a model directory that the encoder registry loads by path."""
