"""Deploy page: the boards this studio knows, their check, a push with progress, and a run in the live panel.

A first connection shows the board's host-key fingerprint in a confirmation; only a key the
user accepted is trusted (the same rule as `studio board check --trust`).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from deploy.errors import UserError
from studio.gui.board_eval_view import BoardEvalView
from studio.gui.common import PathField
from studio.gui.throughput_view import ThroughputView

BENCH_FRAMES = 100  # frames per worker count when the page benches a board
EVAL_LIMIT = None  # images of the split the page evaluates on a board (None: all)


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setWordWrap(True)
    return table


def _fill(table: QTableWidget, rows: list[tuple]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(str(value)))
    table.resizeColumnToContents(0)
    table.resizeRowsToContents()  # a missing part's fix wraps onto several lines


class DeployPage(QWidget):
    def __init__(self, jobs, parent=None):
        super().__init__(parent)
        self.jobs = jobs
        self.trusted: dict[str, str] = {}  # board -> fingerprint the user accepted this session
        self.boards = _table(["board", "address", "python", "folder on the board"])
        self.boards.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.boards.setSelectionMode(QTableWidget.SelectionMode.ExtendedSelection)  # several: side by side
        self.name, self.host, self.user = QLineEdit(), QLineEdit(), QLineEdit()
        self.name.setPlaceholderText("rock5b")
        self.host.setPlaceholderText("192.168.1.42")
        self.user.setPlaceholderText("radxa")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(22)
        self.key = PathField("private key (default: ssh-agent and ~/.ssh)", key="ssh-key")
        self.python = QLineEdit("python3")
        self.root = QLineEdit("~/edge-deploy-studio")
        add_form = QFormLayout()
        for label, widget in (("Name", self.name), ("Host", self.host), ("User", self.user), ("Port", self.port),
                              ("Key", self.key), ("Python", self.python), ("Folder", self.root)):
            add_form.addRow(label, widget)
        add_button, remove_button = QPushButton("Add board"), QPushButton("Remove selected")
        add_button.clicked.connect(self.add_board)
        remove_button.clicked.connect(self.remove_board)
        row = QHBoxLayout()
        row.addWidget(add_button)
        row.addWidget(remove_button)
        boards_box = QGroupBox("Boards (no passwords are stored: keys or ssh-agent)")
        b_layout = QVBoxLayout(boards_box)
        b_layout.addWidget(self.boards, 1)
        b_layout.addLayout(add_form)
        b_layout.addLayout(row)

        self.check_button = QPushButton("Check board")
        self.check_button.clicked.connect(self.check)
        self.facts = _table(["what", "value"])
        self.model = PathField("exported model: .rknn (NPU) or .onnx (board CPU)", name_filter="Models (*.rknn *.onnx)",
                               key="deploy-model")
        self.push_button = QPushButton("Push")
        self.push_button.clicked.connect(self.push)
        self.source = QLineEdit()
        self.source.setPlaceholderText("on the board: camera:0, /data/flight.mp4, /data/scenes")
        self.workers = QSpinBox()
        self.workers.setRange(1, 6)
        self.workers.setValue(3)
        self.backend = QComboBox()
        self.backend.addItems(["rknnlite", "ort"])
        self.run_button = QPushButton("Run in the live panel")
        self.run_button.clicked.connect(self.run_live)
        self.run_button.setToolTip("Select several boards (Ctrl+click) to watch them side by side")
        self.bench_button = QPushButton("Bench 1, 2, 3 workers")
        self.bench_button.setToolTip("Frames/s and latency from read to result on the board, per worker count")
        self.bench_button.clicked.connect(self.bench)
        self.data = PathField("data.yaml with labelled images (for Evaluate on the board)", name_filter="YAML (*.yaml)",
                              key="deploy-data")
        self.eval_button = QPushButton("Evaluate on the board")
        self.eval_button.setToolTip("mAP measured on the board beside float on the host and int8 in the simulator")
        self.eval_button.clicked.connect(self.evaluate)
        self.status = QLabel("Add a board, select it and check it.")
        self.status.setWordWrap(True)
        actions = QFormLayout()
        actions.addRow("", self.check_button)
        actions.addRow("Model", self.model)
        actions.addRow("", self.push_button)
        for label, widget in (("Source", self.source), ("Workers", self.workers), ("Backend", self.backend)):
            actions.addRow(label, widget)
        actions.addRow("", self.run_button)
        actions.addRow("", self.bench_button)
        actions.addRow("Data", self.data)
        actions.addRow("", self.eval_button)
        board_box = QGroupBox("Selected board")
        s_layout = QVBoxLayout(board_box)
        s_layout.addLayout(actions)
        s_layout.addWidget(self.status)
        self.throughput = ThroughputView()
        self.results = QTabWidget()
        self.results.addTab(self.facts, "Facts")
        self.results.addTab(self.throughput, "Latency and throughput")
        self.accuracy = BoardEvalView()
        self.results.addTab(self.accuracy, "Accuracy on the board")
        s_layout.addWidget(self.results, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(boards_box, 1)
        layout.addWidget(board_box, 1)
        self.refresh()

    def store(self):
        from deploy.board.profiles import BoardStore

        return BoardStore()

    def refresh(self) -> None:
        profiles = list(self.store().load().values())
        _fill(self.boards, [(p.name, p.address, p.python, p.root) for p in profiles])
        if profiles and not self.boards.selectedItems():
            self.boards.selectRow(0)

    def select(self, name: str) -> None:
        """Select the board of this name in the list (the wizard hands its choice over)."""
        for row in range(self.boards.rowCount()):
            if self.boards.item(row, 0).text() == name:
                self.boards.clearSelection()
                self.boards.selectRow(row)

    def selected(self) -> str | None:
        """The first selected board (check and push act on it)."""
        names = self.selected_all()
        return names[0] if names else None

    def selected_all(self) -> list[str]:
        rows = sorted({item.row() for item in self.boards.selectedItems()})
        return [self.boards.item(row, 0).text() for row in rows]

    def _need_board(self) -> str | None:
        name = self.selected()
        if name is None:
            self.window().show_error("add a board first, then select it in the list")
        return name

    def add_board(self) -> None:
        from deploy.board.profiles import BoardProfile

        try:
            if not (self.name.text() and self.host.text() and self.user.text()):
                raise UserError("a board needs a name, a host and a user")
            self.store().add(BoardProfile(self.name.text(), self.host.text(), self.user.text(), self.port.value(),
                                          self.key.text() or None, self.python.text() or "python3",
                                          self.root.text() or "~/edge-deploy-studio"))
        except UserError as exc:
            self.window().show_error(str(exc))
            return
        self.refresh()
        self.boards.selectRow(self.boards.rowCount() - 1)
        self.status.setText(f"Added {self.name.text()}; press Check board (its host key will be shown first).")

    def remove_board(self) -> None:
        name = self.selected()
        if name:
            self.store().remove(name)
            self.refresh()

    def access(self, name: str):
        from studio.core.board import Access

        return Access(name, trust=self.trusted.get(name, False))

    def confirm_trust(self, name: str, key_type: str, fingerprint: str) -> bool:
        """Ask the user to compare the fingerprint (tests replace this)."""
        answer = QMessageBox.question(
            self, "Trust this board?",
            f"{name} shows the host key\n\n{key_type} {fingerprint}\n\nCompare it with the board's own "
            "(on the board: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub). Trust it?")
        return answer == QMessageBox.StandardButton.Yes

    def check(self) -> None:
        from deploy.board.check import check_board
        from deploy.board.ssh import UnknownHostKey

        name = self._need_board()
        if name is None:
            return
        access = self.access(name)

        def work(job):
            job.stage("check", None, name)
            try:
                with access.open() as board:
                    return check_board(board)
            except UnknownHostKey as exc:
                return exc

        self.status.setText(f"Checking {name}…")
        self.jobs.start(f"Check {name}", work, on_success=lambda result: self.checked(name, result),
                        on_failure=self.failed)

    def checked(self, name: str, result) -> None:
        from deploy.board.ssh import UnknownHostKey

        if isinstance(result, UnknownHostKey):
            if self.confirm_trust(name, result.key_type, result.fingerprint):
                self.trusted[name] = result.fingerprint
                self.check()
            else:
                self.status.setText(f"{name}'s host key was not trusted; nothing was sent to it.")
            return
        _fill(self.facts, result.rows())
        self.status.setText(f"{name}: {result.verdict()}.")

    def push(self) -> None:
        from studio.core.board import push_model

        name = self._need_board()
        if name is None or not self._need_model():
            return
        access, model = self.access(name), Path(self.model.text())
        self.status.setText(f"Pushing {model.name} to {name}… (progress in the jobs dock)")
        self.jobs.start(f"Push to {name}", lambda job: push_model(access, model, "studio", job),
                        on_success=lambda r: self.status.setText(
                            f"Pushed to {name}: {len(r.sent)} file(s), {r.bytes_sent} bytes sent, {r.unchanged} "
                            f"unchanged (runtime {r.runtime_version})."),
                        on_failure=self.failed)

    def _need_model(self) -> bool:
        """An exported model the board can run: one whose sidecar reads."""
        from deploy.runtime.metadata import read_model_meta

        if not self.model.text():
            self.window().show_error("choose an exported model first")
            return False
        try:
            read_model_meta(self.model.text())
        except UserError as exc:
            self.window().show_error(str(exc))
            return False
        return True

    def _ready(self, field, missing: str) -> str | None:
        """The selected board when it, a model and `field` are all given; else None, the user told what is missing."""
        name = self._need_board()
        if name is None or not self._need_model():
            return None
        if not field.text():
            self.window().show_error(missing)
            return None
        return name

    def _start(self, name: str, doing: str, title: str, work, req, done) -> None:
        """Run work(access, req, job) in the jobs dock; done(name, result) on success."""
        access = self.access(name)
        self.status.setText(f"{doing}… (progress in the jobs dock)")
        self.jobs.start(title, lambda job: work(access, req, job), on_success=lambda result: done(name, result),
                        on_failure=self.failed)

    def run_live(self) -> None:
        from studio.core.board_live import BoardLiveRequest

        name = self._ready(self.source, "say what to run on: a source on the board (camera:0, a video, a folder)")
        if name is None:
            return
        requests = [BoardLiveRequest(board, Path(self.model.text()), self.source.text(), self.backend.currentText(),
                                     self.workers.value(), trust=self.trusted.get(board, False))
                     for board in self.selected_all()]
        window = self.window()
        window.show_page("Live")
        if len(requests) == 1:
            window.page("Live").start_board(requests[0])
        else:
            window.page("Live").start_boards(requests)

    def bench(self) -> None:
        from studio.core.board import BenchRequest, bench_board

        name = self._ready(self.source, "say what to bench on: images or a video on the board")
        if name is None:
            return
        req = BenchRequest(name, Path(self.model.text()), self.source.text(), (1, 2, 3), BENCH_FRAMES,
                           self.backend.currentText())
        self._start(name, f"Benching {name} with 1, 2 and 3 workers", f"Bench {name}", bench_board, req, self.benched)

    def benched(self, name: str, result: dict) -> None:
        self.throughput.show_bench(name, result)
        self.results.setCurrentWidget(self.throughput)
        best = max(result["runs"], key=lambda r: r["fps"] or 0)
        self.status.setText(f"{name}: best {best['fps']} frames/s with {best['workers']} worker(s), latency p50 "
                            f"{(best.get('latency_ms') or {}).get('p50', '–')} ms.")

    def evaluate(self) -> None:
        from studio.core.board_eval import BoardEvalRequest, board_eval

        name = self._ready(self.data, "choose the data.yaml whose labelled images the board should be scored on")
        if name is None:
            return
        req = BoardEvalRequest(name, Path(self.model.text()), Path(self.data.text()),
                               backend=self.backend.currentText(), workers=self.workers.value(), limit=EVAL_LIMIT)
        self._start(name, f"Evaluating on {name}", f"Evaluate on {name}", board_eval, req, self.evaluated)

    def evaluated(self, name: str, report: dict) -> None:
        self.accuracy.show_report(report)
        self.results.setCurrentWidget(self.accuracy)
        board = report["columns"][-1]
        self.status.setText(f"{name}: mAP50-95 {board['map50_95']:.4f} on the board over {report['images']} images.")

    def failed(self, message: str) -> None:
        self.status.setText(message)
        self.window().show_error(message)
