"""Where a run keeps its state: ``DIR.tmp-train/`` beside the output directory ``DIR``.

While training, ``DIR.tmp-train/checkpoint.pt`` holds everything a resumed run needs (model, optimizer,
scheduler, RNG state, step, losses, evaluations, best weights), replaced atomically (temporary file, fsync,
rename). At the end the model is assembled in ``DIR.tmp-train/model/`` and renamed to ``DIR``, so ``DIR``
either does not exist or is complete; then the work folder is removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from embedsearch.errors import InvalidInputError, OutputExistsError, TrainingError

CHECKPOINT_FORMAT = 1


class Workspace:
    """The work folder of the run that writes ``out``."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.folder = self.out.with_name(self.out.name + ".tmp-train")
        self.checkpoint = self.folder / "checkpoint.pt"

    def check(self, *, overwrite: bool, resume: bool) -> None:
        """Fail fast, before any work: an existing ``out`` needs ``overwrite``; ``resume`` needs a checkpoint;
        a checkpoint left by an interrupted run needs ``resume`` or ``overwrite``.

        Raises :class:`OutputExistsError` or :class:`InvalidInputError` (nothing to resume).
        """
        if self.out.exists() and not overwrite:
            raise OutputExistsError(f"{self.out} already exists; pass --overwrite to replace it")
        if resume and not self.checkpoint.is_file():
            raise InvalidInputError(f"nothing to resume: no checkpoint in {self.folder}")
        if not resume and not overwrite and self.checkpoint.is_file():
            raise OutputExistsError(
                f"{self.folder} holds an interrupted run; pass --resume to continue it or --overwrite to start over"
            )

    def start_fresh(self) -> None:
        """Remove what an earlier attempt left and create the work folder."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)

    def discard_unless_resumable(self) -> None:
        """Remove the work folder if it holds no checkpoint (nothing a ``--resume`` could continue)."""
        if not self.checkpoint.is_file():
            shutil.rmtree(self.folder, ignore_errors=True)

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` as the checkpoint, atomically."""
        tmp = self.checkpoint.with_suffix(".pt.tmp")
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
        _fsync(tmp)
        os.replace(tmp, self.checkpoint)
        _fsync(self.folder)

    def load(self) -> dict[str, Any]:
        """The last checkpoint; :class:`TrainingError` if it is unreadable or of another format."""
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file fails in many ways
            raise TrainingError(f"cannot read checkpoint {self.checkpoint}: {err}") from err
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise TrainingError(f"{self.checkpoint} is not a checkpoint of this version of embedsearch")
        return state

    def publish(self, write: Callable[[Path], None]) -> Path:
        """Let ``write`` fill a staging folder, then make it ``out`` (replacing an existing ``out``) and remove
        the work folder. Returns ``out``."""
        staging = self.folder / "model"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        write(staging)
        if self.out.exists():
            os.replace(self.out, self.folder / "replaced")
        os.replace(staging, self.out)
        _fsync(self.out.parent)
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.out


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
