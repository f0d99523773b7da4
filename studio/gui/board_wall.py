"""Several boards side by side in the live panel: one tile per board, each fed by its own board session."""
from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from studio.gui.image_view import ImageView


class BoardTile(QGroupBox):
    """One board: its newest annotated frame, frames/s and the ms of each stage, as the agent measured them."""

    def __init__(self, runner, parent=None):
        super().__init__(runner.request.board, parent)
        self.runner = runner
        self.frames_shown = 0
        self.view = ImageView(f"starting on {runner.request.board}…")
        self.view.setMinimumSize(240, 180)
        self.numbers = QLabel("frames/s –")
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.numbers)
        runner.frame_ready.connect(self.show_latest)

    def show_latest(self) -> None:
        latest = self.runner.take()
        if latest is None:
            return
        rgb, dets, stats = latest
        self.frames_shown += 1
        self.view.show_rgb(rgb)
        stages = "  ".join(f"{k} {v:.1f}" for k, v in stats.stage_ms.items() if k != "read")
        self.numbers.setText(f"frames/s {stats.fps:.1f}   frames {stats.frames}   {len(dets)} boxes   ms: {stages}")


class BoardWall(QWidget):
    """A grid of BoardTiles (two per row); start() runs them all, stop() ends every board's agent."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.tiles: list[BoardTile] = []

    def start(self, runners: list) -> None:
        self.stop()
        for tile in self.tiles:
            self.grid.removeWidget(tile)
            tile.deleteLater()
        self.tiles = [BoardTile(r, self) for r in runners]
        for i, tile in enumerate(self.tiles):
            self.grid.addWidget(tile, i // 2, i % 2)
        for runner in runners:
            runner.start()

    def running(self) -> bool:
        return any(t.runner.isRunning() for t in self.tiles)

    def stop(self) -> None:
        for tile in self.tiles:
            tile.runner.stop()
        for tile in self.tiles:
            tile.runner.wait(15000)
