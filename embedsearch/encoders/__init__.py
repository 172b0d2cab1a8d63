"""Stage 1: encoders turn texts and images into normalised float32 vectors."""

from __future__ import annotations

from embedsearch.encoders.base import Encoder
from embedsearch.encoders.registry import (
    get_encoder,
    list_encoders,
    register_directory_loader,
    register_encoder,
)

__all__ = ["Encoder", "get_encoder", "list_encoders", "register_directory_loader", "register_encoder"]
