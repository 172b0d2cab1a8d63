"""Which encoder belongs to an index: the one check that an encoder matches, for writers and readers alike."""

from __future__ import annotations

from typing import Any

from embedsearch.encoders import Encoder, get_encoder
from embedsearch.errors import EncoderMismatchError


def encoder_of(manifest: dict[str, Any], encoder: Encoder | str | None = None, *, role: str = "encoder") -> Encoder:
    """``encoder`` (a name, a directory or an :class:`Encoder`), or the one the manifest names, checked against
    the manifest. A model directory is fingerprinted from its files before it is loaded, so a manifest can never
    make embedsearch load a directory whose weights differ from the recorded ones."""
    if not isinstance(encoder, Encoder):
        reference = manifest["encoder"]["name"] if encoder is None else encoder
        encoder = get_encoder(reference, fingerprint=manifest["encoder"]["fingerprint"])
    check_encoder(manifest, encoder, role=role)
    return encoder


def check_encoder(manifest: dict[str, Any], encoder: Encoder, *, role: str = "encoder") -> None:
    """:class:`EncoderMismatchError` unless ``encoder`` has the fingerprint and dimension the index was built with."""
    expected = manifest["encoder"]
    if encoder.fingerprint != expected["fingerprint"] or encoder.dim != manifest["dim"]:
        raise EncoderMismatchError(
            f"{role} {encoder.name!r} (fingerprint {encoder.fingerprint}, dim {encoder.dim}) does not match index "
            f"{manifest['name']!r}, built with {expected['name']!r} (fingerprint {expected['fingerprint']}, "
            f"dim {manifest['dim']})"
        )
