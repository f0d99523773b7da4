"""Cancelling an export leaves the previous result intact; progress events describe the stages."""
from __future__ import annotations

import pytest

from studio.core.export import ExportRequest, export_model
from studio.core.jobs import Cancelled, CancelToken, Job, ProgressEvent


def test_cancel_during_export_keeps_previous_output(detector_pt, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous result")
    token = CancelToken()
    seen: list[ProgressEvent] = []

    def progress(event: ProgressEvent) -> None:
        seen.append(event)
        if event.stage == "export onnx":
            token.cancel()  # the user presses Cancel once the export has started

    job = Job(progress=progress, cancel=token)
    with pytest.raises(Cancelled):
        export_model(ExportRequest(model=str(detector_pt), imgsz=128, out=out, force=True), job)
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # staging folder removed
    assert [e.stage for e in seen][:2] == ["load model", "export onnx"]


def test_export_reports_stages_in_order(detector_pt, tmp_path):
    stages: list[str] = []
    export_model(ExportRequest(model=str(detector_pt), imgsz=128, out=tmp_path / "m.onnx"),
                 Job(progress=lambda e: stages.append(e.stage)))
    assert stages == ["load model", "export onnx", "write"]
