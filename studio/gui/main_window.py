"""The main window: page navigation on the left, the pages, and the jobs dock at the bottom."""
from __future__ import annotations

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QMainWindow, QMessageBox, QStackedWidget, QWidget

from studio.gui.common import settings, show_error
from studio.gui.jobs_dock import JobsDock


class MainWindow(QMainWindow):
    """Pages are built on first visit, so the window appears before anything heavy is imported."""

    PAGES = ("Models", "Data", "Compress", "Export", "Deploy", "Live")

    def __init__(self):
        super().__init__()
        self.setWindowTitle("Edge Deploy Studio")
        self.resize(1280, 820)
        self.jobs = JobsDock(self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.jobs)
        self.nav = QListWidget()
        self.nav.addItems(list(self.PAGES))
        self.nav.setFixedWidth(130)
        self.nav.setObjectName("navigation")
        self.nav.setStyleSheet("QListWidget#navigation { font-size: 14px; } "
                               "QListWidget#navigation::item { padding: 10px 12px; }")
        self.stack = QStackedWidget()
        self.pages: dict[str, object] = {}
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(6, 6, 6, 0)
        row.addWidget(self.nav)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        QTimer.singleShot(0, lambda: self.resizeDocks([self.jobs], [150], Qt.Orientation.Vertical))
        self.nav.currentRowChanged.connect(lambda row: self.show_page(self.PAGES[row]))
        self.last_error = None
        self._menus()
        self.statusBar().showMessage("Ready")
        geometry, state = settings().value("window/geometry"), settings().value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.restoreState(state)
        self.nav.setCurrentRow(0)

    def _menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_model = QAction("&Open model…", self, shortcut=QKeySequence.StandardKey.Open)
        open_model.triggered.connect(lambda: (self.show_page("Models"), self.page("Models").choose()))
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addActions([open_model, quit_action])
        view = self.menuBar().addMenu("&View")
        for i, name in enumerate(self.PAGES):
            action = QAction(name, self, shortcut=QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, row=i: self.nav.setCurrentRow(row))
            view.addAction(action)
        jobs = self.jobs.toggleViewAction()
        jobs.setShortcut(QKeySequence("Ctrl+J"))
        view.addAction(jobs)

    def page(self, name: str):
        """The page widget, created on first use."""
        if name not in self.pages:
            if name == "Models":
                from studio.gui.pages.models_page import ModelsPage

                widget = ModelsPage(self.jobs)
            elif name == "Compress":
                from studio.gui.pages.compress_page import CompressPage

                widget = CompressPage(self.jobs)
            elif name == "Export":
                from studio.gui.pages.export_page import ExportPage

                widget = ExportPage(self.jobs)
            elif name == "Data":
                from studio.gui.pages.data_page import DataPage

                widget = DataPage(self.jobs)
            elif name == "Deploy":
                from studio.gui.pages.deploy_page import DeployPage

                widget = DeployPage(self.jobs)
            else:
                from studio.gui.pages.live_page import LivePage

                widget = LivePage()
            widget.setObjectName(f"page-{name.lower()}")
            self.pages[name] = widget
            self.stack.addWidget(widget)
        return self.pages[name]

    def show_page(self, name: str) -> None:
        self.stack.setCurrentWidget(self.page(name))
        row = self.PAGES.index(name)
        if self.nav.currentRow() != row:
            self.nav.setCurrentRow(row)
        self.statusBar().showMessage(name)

    def show_error(self, message: str) -> None:
        self.last_error = show_error(self, message)
        self.statusBar().showMessage(message, 10000)

    def confirm_close(self) -> bool:
        """Ask before cancelling running jobs (tests replace this)."""
        answer = QMessageBox.question(self, "Jobs are running",
                                      f"{len(self.jobs.running())} job(s) still running. Cancel them and quit?")
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if self.jobs.running() and not self.confirm_close():
            event.ignore()
            return
        self.jobs.cancel_all()
        for page in self.pages.values():
            if hasattr(page, "shutdown"):
                page.shutdown()
        settings().setValue("window/geometry", self.saveGeometry())
        settings().setValue("window/state", self.saveState())
        event.accept()
