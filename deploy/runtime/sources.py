"""Where frames come from, in one grammar for the CLI, the GUI and the board.

    photo.jpg | images/ | "images/*.png"   images (a folder is read in sorted order)
    flight.mp4                             a video file
    camera:0                               a V4L2 camera (a live source: frames may be dropped)

Large images can be cut into overlapping tiles (see tiling.py). Reading images needs
OpenCV, which is imported when a source is opened, not before.
"""
import glob
import os
import time
from collections.abc import Iterator
from typing import Callable, Optional

from deploy.errors import UserError
from deploy.runtime.frame import Frame

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
RASTER_SUFFIXES = (".tif", ".tiff")  # GeoTIFF, BigTIFF, COG: read by windows in tiled runs (raster.py)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


def _cv2():
    # ffmpeg inside OpenCV writes its own lines ("[mjpeg @ 0x...] overread") on a damaged video; a source
    # that cannot be read is reported here, once, as the studio's own message
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    try:
        import cv2
    except ImportError:
        raise UserError("reading images and video needs OpenCV (pip install opencv-python-headless)") from None
    return cv2


class Source:
    """An iterable of Frames; `live` sources (cameras) may drop frames when inference falls behind."""

    live = False
    name = ""

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError


class ImageSource(Source):
    """Image files in order; an unreadable one is skipped with a warning, the rest still run."""

    def __init__(self, paths: list[str], warn: Callable[[str], None], windowed: bool = False,
                 bands: Optional[tuple] = None, stretches: Optional[dict] = None):
        self.paths, self.warn, self.windowed, self.bands = paths, warn, windowed, bands
        self.stretches = stretches or {}  # path -> the stretch an interrupted run read that raster with
        self.name = paths[0] if len(paths) == 1 else f"{len(paths)} images"
        self.skipped: list[str] = []
        self.rasters: list[dict] = []  # per raster read by windows: its path and reading settings

    def __iter__(self) -> Iterator[Frame]:
        cv2 = _cv2()
        index = 0
        for path in self.paths:
            if self.windowed and os.path.splitext(path)[1].lower() in RASTER_SUFFIXES:
                yield from self._raster(path, index)
                index += 1
                continue
            start = time.perf_counter()
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                self.skipped.append(path)
                self.warn(f"skipped {path}: not a readable image")
                continue
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            yield Frame(rgb, index, path, (time.perf_counter() - start) * 1e3)
            index += 1


    def _raster(self, path: str, index: int) -> Iterator[Frame]:
        """A raster as a lazy image: its tiles are read window by window (tiling.py), never the whole."""
        from deploy.runtime.raster import RasterImage

        raster = RasterImage(path, self.bands, self.stretches.get(path))
        self.rasters.append({"path": path, **raster.settings})
        try:
            yield Frame(raster, index, path, 0.0)
        finally:
            raster.close()


class VideoSource(Source):
    """Frames of a video file, or of a camera (live) when given an integer device."""

    def __init__(self, target, live: bool, max_frames: Optional[int] = None):
        self.target, self.live, self.max_frames = target, live, max_frames
        self.name = f"camera:{target}" if live else str(target)

    def __iter__(self) -> Iterator[Frame]:
        cv2 = _cv2()
        capture = cv2.VideoCapture(self.target)
        if not capture.isOpened():
            raise UserError(f"{self.name}: cannot be opened as {'a camera' if self.live else 'a video'}")
        try:
            index = 0
            while self.max_frames is None or index < self.max_frames:
                start = time.perf_counter()
                ok, image = capture.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                yield Frame(rgb, index, self.name, (time.perf_counter() - start) * 1e3)
                index += 1
        finally:
            capture.release()


def _images_in(folder: str) -> list[str]:
    found = []
    for root, _, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES]
    return sorted(found)


def open_source(spec: str, warn: Callable[[str], None] = print, max_frames: Optional[int] = None,
                windowed: bool = False, bands: Optional[tuple] = None, stretches: Optional[dict] = None) -> Source:
    """Parse the source grammar; a UserError names what was wrong. windowed: rasters (GeoTIFF and the like)
    are read tile window by tile window instead of whole (for tiled runs), as RGB from `bands` (1-based),
    16-bit ones scaled by `stretches[path]` when given (a resumed run), else by their own statistics."""
    if spec.startswith("camera:"):
        device = spec.split(":", 1)[1]
        if not device.isdigit():
            raise UserError(f"{spec}: a camera is camera:N with N the V4L2 device number (camera:0)")
        return VideoSource(int(device), live=True, max_frames=max_frames)
    if os.path.isdir(spec):
        paths = _images_in(spec)
        if not paths:
            raise UserError(f"{spec}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageSource(paths, warn, windowed, bands, stretches)
    if any(ch in spec for ch in "*?["):
        paths = sorted(p for p in glob.glob(spec) if os.path.splitext(p)[1].lower() in IMAGE_SUFFIXES)
        if not paths:
            raise UserError(f"{spec}: the pattern matches no images")
        return ImageSource(paths, warn, windowed, bands, stretches)
    if not os.path.exists(spec):
        raise UserError(f"{spec}: no such file, folder or camera")
    suffix = os.path.splitext(spec)[1].lower()
    if suffix in VIDEO_SUFFIXES:
        return VideoSource(spec, live=False, max_frames=max_frames)
    if suffix in IMAGE_SUFFIXES:
        return ImageSource([spec], warn, windowed, bands, stretches)
    raise UserError(f"{spec}: not an image ({', '.join(IMAGE_SUFFIXES)}) or video ({', '.join(VIDEO_SUFFIXES)})")
