"""Where detections go: JSON lines, annotated images or video, or a callback (the GUI's live panel)."""
import json
import os
from typing import Callable, Optional, TextIO

from deploy.runtime.atomic import StagedFile, staged
from deploy.runtime.detections import Detections
from deploy.runtime.draw import draw_detections
from deploy.runtime.output import write_image


class Sink:
    """Receives Detections in frame order; `needs_images` asks the pipeline to keep frames."""

    needs_images = False

    def write(self, dets: Detections) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JsonLinesSink(Sink):
    """One JSON object per frame on a text stream (stdout, a file, the board's socket)."""

    def __init__(self, stream: TextIO, names: Optional[list[str]] = None):
        self.stream, self.names = stream, names

    def write(self, dets: Detections) -> None:
        self.stream.write(json.dumps(dets.to_dict(self.names)) + "\n")
        self.stream.flush()


class ImageSink(Sink):
    """Annotated copies of image frames in a folder, named after their sources (never over the originals)."""

    needs_images = True

    def __init__(self, folder: str, names: Optional[list[str]] = None):
        os.makedirs(folder, exist_ok=True)
        self.folder, self.names, self.written = folder, names, []

    def write(self, dets: Detections) -> None:

        stem = os.path.splitext(os.path.basename(dets.source or "frame"))[0] or "frame"
        path = os.path.join(self.folder, f"{stem}_{dets.frame:06d}.jpg")
        with staged(path, ".jpg") as tmp:
            write_image(tmp, draw_detections(dets.image, dets, self.names))
        self.written.append(path)


class VideoSink(Sink):
    """An annotated video (MJPG in .avi: every OpenCV build can write it)."""

    needs_images = True

    def __init__(self, path: str, fps: float = 25.0, names: Optional[list[str]] = None):
        self.path, self.fps, self.names, self.writer, self.stage = path, fps, names, None, None

    def write(self, dets: Detections) -> None:
        import cv2

        frame = draw_detections(dets.image, dets, self.names)
        if self.writer is None:
            h, w = frame.shape[:2]
            self.stage = StagedFile(self.path, ".avi")
            self.writer = cv2.VideoWriter(str(self.stage.tmp), cv2.VideoWriter_fourcc(*"MJPG"), self.fps, (w, h))
        self.writer.write(frame)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.stage.publish()


class CallbackSink(Sink):
    """Calls a function with each Detections (the GUI connects its live panel here)."""

    def __init__(self, callback: Callable[[Detections], None], needs_images: bool = False):
        self.callback, self.needs_images = callback, needs_images

    def write(self, dets: Detections) -> None:
        self.callback(dets)
