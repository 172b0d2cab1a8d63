"""Where a run keeps its state: ``DIR.tmp-train/`` beside the output directory ``DIR``.

While training, ``DIR.tmp-train/checkpoint.pt`` holds everything a resumed run needs (model, optimizer,
scheduler, RNG state, step, losses, evaluations, best weights), replaced atomically (temporary file, fsync,
rename). At the end the model is assembled in ``DIR.tmp-train/model/`` and renamed to ``DIR``, so ``DIR``
either does not exist or is complete; then the work folder is removed.

A run deletes only what a run wrote: ``--overwrite`` replaces ``DIR`` only if it is an empty folder or a model
directory a trainer wrote (it has ``training_card.json``), and the work folder only if it holds nothing but
what a run puts there; anything else is refused with :class:`OutputExistsError`, before any work.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from embedsearch.errors import InvalidInputError, OutputExistsError, TrainingError
from embedsearch.files import replace_durably
from embedsearch.train.card import CARD

CHECKPOINT_FORMAT = 1
WORK_FILES = frozenset({"checkpoint.pt", "checkpoint.pt.tmp", "model", "replaced"})  # all a run writes there


class Workspace:
    """The work folder of the run that writes ``out``."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.folder = self.out.with_name(self.out.name + ".tmp-train")
        self.checkpoint = self.folder / "checkpoint.pt"

    def check(self, *, overwrite: bool, resume: bool) -> None:
        """Fail fast, before any work: an existing ``out`` needs ``overwrite`` and must be an empty folder or a
        trained model; ``resume`` needs a checkpoint; a checkpoint left by an interrupted run needs ``resume`` or
        ``overwrite``; a work folder to start afresh must hold only what a run writes.

        Raises :class:`OutputExistsError` or :class:`InvalidInputError` (nothing to resume).
        """
        if self.out.exists():
            if not overwrite:
                raise OutputExistsError(f"{self.out} already exists; pass --overwrite to replace it")
            self._check_replaceable()
        if resume and not self.checkpoint.is_file():
            raise InvalidInputError(f"nothing to resume: no checkpoint in {self.folder}")
        if resume:
            return
        if not overwrite and self.checkpoint.is_file():
            raise OutputExistsError(
                f"{self.folder} holds an interrupted run; pass --resume to continue it or --overwrite to start over"
            )
        self._check_work_folder()

    def _check_replaceable(self) -> None:
        """``out`` may be replaced only if it is an empty folder or a model directory a trainer wrote."""
        if not self.out.is_dir():
            why = "is not a folder"
        elif any(self.out.iterdir()) and not (self.out / CARD).is_file():
            why = f"holds files and is not a model embedsearch trained (no {CARD})"
        else:
            return
        raise OutputExistsError(
            f"{self.out} {why}; --overwrite replaces only an empty folder or a trained model: move it or choose "
            "another --out"
        )

    def _check_work_folder(self) -> None:
        """The work folder, which a fresh start replaces, may hold only what a run writes there."""
        if not self.folder.exists():
            return
        if self.folder.is_dir():
            foreign = sorted(p.name for p in self.folder.iterdir() if p.name not in WORK_FILES)
            if not foreign:
                return
            why = f"holds {', '.join(foreign[:3])}" + (", ..." if len(foreign) > 3 else "")
        else:
            why = "is a file"
        raise OutputExistsError(
            f"{self.folder} {why}, which no training run wrote; a run replaces this work folder: move it"
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
        replace_durably(tmp, self.checkpoint)

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
            self._check_replaceable()  # again: it may have changed while the run trained
            os.replace(self.out, self.folder / "replaced")
        replace_durably(staging, self.out)  # every file of the model is on disk before it is named ``out``
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.out


def check_same_run(state: dict[str, Any], identity: dict[str, Any], fingerprint: str, world: int) -> None:
    """A checkpoint may only continue the run that wrote it: same settings (``identity``), data and number of
    processes. Raises :class:`TrainingError` naming what changed."""
    before = state["identity"]
    changed = sorted(k for k in set(before) | set(identity) if before.get(k) != identity.get(k))
    if changed:
        shown = ", ".join(f"{k} {before.get(k)!r} -> {identity.get(k)!r}" for k in changed)
        raise TrainingError(f"the checkpoint was written with other settings ({shown}); resume with the same ones")
    if state["data"] != fingerprint:
        raise TrainingError("the training data changed since the checkpoint was written; resume with the same files")
    if state["world"] != world:
        raise TrainingError(f"the checkpoint was written by {state['world']} process(es); resume with as many")
