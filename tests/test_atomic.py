"""The one atomic-write helper: publish by rename, keep the old file on error, permissions as asked."""
from __future__ import annotations

import json
import os
import stat

import cv2
import numpy as np
import pytest

from deploy.runtime.atomic import StagedFile, staged, write_json_atomic, write_text_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    """The new text replaces the old and no temporary file is left in the folder."""
    target = tmp_path / "report.md"
    target.write_text("old")
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_an_error_while_writing_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    """A write that fails half-way leaves the previous contents untouched and the folder clean."""
    target = tmp_path / "model.pt"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="disk full"):
        with staged(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_permissions_follow_the_umask_unless_a_mode_is_given(tmp_path):
    """Default permissions are a plain open()'s (0o666 less the umask); secrets get exactly the mode asked."""
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "plain.txt", "x")
        write_json_atomic(tmp_path / "run.json", {"token": "t"}, mode=0o600)
        with open(tmp_path / "reference.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "plain.txt") == _mode(tmp_path / "reference.txt") == 0o640
    assert _mode(tmp_path / "run.json") == 0o600


def test_json_is_indented_with_a_final_newline_or_compact_on_request(tmp_path):
    """JSON files end in a newline; indent=None writes one line."""
    write_json_atomic(tmp_path / "a.json", {"b": [1, 2]})
    write_json_atomic(tmp_path / "c.json", {"b": [1, 2]}, indent=None)
    assert (tmp_path / "a.json").read_text() == '{\n  "b": [\n    1,\n    2\n  ]\n}\n'
    assert (tmp_path / "c.json").read_text() == '{"b": [1, 2]}\n'
    assert json.loads((tmp_path / "a.json").read_text()) == {"b": [1, 2]}


def test_a_staged_file_keeps_the_extension_writers_choose_the_format_from(tmp_path):
    """OpenCV picks JPEG from the temporary name's ending; nothing appears at the destination until publish()."""
    target = tmp_path / "frame.jpg"
    stage = StagedFile(target, ".jpg")
    assert stage.tmp.parent == tmp_path and stage.tmp.name.endswith(".jpg")
    assert cv2.imwrite(str(stage.tmp), np.full((8, 8, 3), 200, np.uint8))
    assert not target.exists()
    assert stage.publish() == target
    assert cv2.imread(str(target)).shape == (8, 8, 3) and not stage.tmp.exists()
    again = StagedFile(target, ".jpg")
    again.discard()
    again.discard()  # twice is harmless
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.jpg"]
