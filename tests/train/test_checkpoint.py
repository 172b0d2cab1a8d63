"""The work folder and the output of a run: ``--overwrite`` replaces only what a trainer wrote (an empty folder,
a model directory with its training card, an interrupted run's work folder) and refuses anything else, before
any work and again at publishing; a checkpoint is replaced atomically."""

from __future__ import annotations

import re

import pytest

from embedsearch.errors import InvalidInputError, OutputExistsError
from embedsearch.train.checkpoint import Workspace


def _model(folder):
    folder.mkdir()
    (folder / "training_card.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_overwrite_replaces_an_empty_folder_or_a_trained_model(tmp_path):
    for out in (tmp_path / "empty", _model(tmp_path / "trained"), tmp_path / "absent"):
        if out.name == "empty":
            out.mkdir()
        Workspace(out).check(overwrite=True, resume=False)
        if out.exists():
            message = f"{out} already exists; pass --overwrite to replace it"
            with pytest.raises(OutputExistsError, match=f"^{re.escape(message)}$"):
                Workspace(out).check(overwrite=False, resume=False)


def test_overwrite_refuses_a_folder_of_other_files_and_a_file(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    message = (
        f"{tmp_path / 'mine'} holds files and is not a model embedsearch trained (no training_card.json); "
        "--overwrite replaces only an empty folder or a trained model: move it or choose another --out"
    )
    with pytest.raises(OutputExistsError, match=f"^{re.escape(message)}$"):
        Workspace(tmp_path / "mine").check(overwrite=True, resume=False)
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(OutputExistsError, match="notes.txt is not a folder; --overwrite replaces only"):
        Workspace(tmp_path / "notes.txt").check(overwrite=True, resume=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"


def test_a_work_folder_is_replaced_only_when_a_run_wrote_all_of_it(tmp_path):
    out = tmp_path / "m"
    work = Workspace(out)
    work.folder.mkdir()
    for name in ("checkpoint.pt", "checkpoint.pt.tmp"):
        (work.folder / name).write_bytes(b"state")
    (work.folder / "model").mkdir()
    with pytest.raises(OutputExistsError, match="holds an interrupted run"):
        work.check(overwrite=False, resume=False)
    work.check(overwrite=True, resume=False)  # an interrupted run: --overwrite starts over
    (work.folder / "checkpoint.pt").unlink()
    work.check(overwrite=False, resume=False)  # a run killed before its first checkpoint: removed silently
    (work.folder / "photos").mkdir()
    message = f"{work.folder} holds photos, which no training run wrote; a run replaces this work folder: move it"
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match=f"^{re.escape(message)}$"):
            work.check(overwrite=overwrite, resume=False)
    assert (work.folder / "photos").is_dir()
    with pytest.raises(InvalidInputError, match="nothing to resume"):
        work.check(overwrite=False, resume=True)


def test_publishing_checks_the_output_again(tmp_path):
    out = tmp_path / "m"
    work = Workspace(out)
    work.check(overwrite=True, resume=False)
    work.start_fresh()
    out.mkdir()
    (out / "added-while-training.txt").write_text("keep me")  # the output appeared while the run trained
    with pytest.raises(OutputExistsError, match="holds files and is not a model embedsearch trained"):
        work.publish(lambda folder: (folder / "training_card.json").write_text("{}"))
    assert (out / "added-while-training.txt").read_text() == "keep me"
    (out / "added-while-training.txt").unlink()
    assert work.publish(lambda folder: (folder / "training_card.json").write_text("{}")) == out
    assert [p.name for p in out.iterdir()] == ["training_card.json"] and not work.folder.exists()
