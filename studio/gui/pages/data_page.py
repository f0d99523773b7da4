"""Data page: import a dataset, check it (statistics and histograms), and browse images with their labels."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.gui.common import PathField
from studio.gui.image_view import ImageView


class DataPage(QWidget):
    def __init__(self, jobs, parent=None):
        super().__init__(parent)
        from studio.core.data.formats import FORMATS

        self.jobs = jobs
        self.data = PathField("a data.yaml (YOLO layout), e.g. from studio data synth", name_filter="*.yaml",
                              key="data")
        check = QPushButton("Check and describe")
        check.clicked.connect(self.run_stats)
        top = QHBoxLayout()
        top.addWidget(QLabel("Dataset"))
        top.addWidget(self.data, 1)
        top.addWidget(check)

        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        self.source = PathField("yolo: data.yaml; coco: .json; voc: Annotations/; dota: labelTxt/", key="import")
        self.images = PathField("images folder (coco, voc, dota)", folder=True, key="import-images")
        self.split = QLineEdit("train")
        self.out = PathField("folder for the imported dataset", folder=True, key="import-out")
        import_button = QPushButton("Import")
        import_button.clicked.connect(self.run_import)
        form = QFormLayout()
        for label, widget in (("Format", self.format), ("Source", self.source), ("Images", self.images),
                              ("Split", self.split), ("Into", self.out), ("", import_button)):
            form.addRow(label, widget)
        import_box = QGroupBox("Import (YOLO, COCO, Pascal VOC, DOTA)")
        import_box.setLayout(form)

        self.stats_text = QLabel("Choose a data.yaml and press Check: missing or corrupt files, out-of-range "
                                 "boxes, duplicates, objects per class and object sizes appear here.")
        self.stats_text.setWordWrap(True)
        self.plots = QTabWidget()
        self.samples = QListWidget()
        self.samples.setMaximumWidth(200)
        self.samples.currentItemChanged.connect(lambda item, _: self.show_sample(item.data(Qt.ItemDataRole.UserRole)
                                                                                 if item else ""))
        self.viewer = ImageView("Pick an image on the left to see its labels.")
        viewer = QHBoxLayout()
        viewer.addWidget(self.samples, 1)
        viewer.addWidget(self.viewer, 3)
        viewer_box = QGroupBox("Images and labels")
        viewer_box.setLayout(viewer)

        left = QVBoxLayout()
        left.addWidget(import_box)
        stats_box = QGroupBox("Statistics")
        stats_layout = QVBoxLayout(stats_box)
        stats_layout.addWidget(self.stats_text)
        stats_layout.addWidget(self.plots, 1)
        left.addWidget(stats_box, 1)
        body = QHBoxLayout()
        body.addLayout(left, 1)
        body.addWidget(viewer_box, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(body, 1)
        self.names: list[str] = []

    def run_import(self) -> None:
        from studio.core.data.formats import import_dataset

        fmt, source, out = self.format.currentText(), self.source.text(), self.out.text()
        if not source or not out:
            self.window().show_error("choose what to import and a folder to import it into")
            return
        images = Path(self.images.text()) if self.images.text() else None
        split = self.split.text() or "train"

        def work(job):
            job.stage("import")
            return import_dataset(fmt, Path(source), Path(out), images, split)

        def imported(data_yaml) -> None:
            self.data.setText(str(data_yaml))
            self.run_stats()

        self.jobs.start(f"Import {fmt}", work, on_success=imported, on_failure=self.window().show_error)

    def run_stats(self) -> None:
        from studio.core.data.stats import dataset_stats

        data = self.data.text()
        if not data:
            self.window().show_error("choose a data.yaml first")
            return
        plots = Path(data).parent / "stats"

        def work(job):
            job.stage("scan", 0)
            return dataset_stats(Path(data), plots, job.stepper("scan"))

        self.jobs.start(f"Check {Path(data).parent.name}", work, on_success=self.show_stats,
                        on_failure=self.window().show_error)

    def show_stats(self, stats) -> None:
        import cv2

        self.names = stats.names
        problems = ", ".join(f"{k.replace('_', ' ')} {len(getattr(stats, k))}" for k in
                             ("missing_images", "unreadable_images", "corrupt_labels", "out_of_range", "duplicates")
                             if getattr(stats, k))
        self.stats_text.setText(
            f"<b>{sum(stats.images.values())} images</b> ({', '.join(f'{k} {v}' for k, v in stats.images.items())}); "
            f"{stats.objects_per_image:.1f} objects per image; {stats.small_fraction:.0%} small (COCO sizes "
            f"{stats.sizes}).<br>Objects per class: {stats.objects_per_class}.<br>"
            f"{'<b>Problems:</b> ' + problems if problems else 'No problems found.'}")
        self.plots.clear()
        for plot in stats.plots:
            view = ImageView("")
            view.show_rgb(cv2.imread(plot)[..., ::-1])
            self.plots.addTab(view, Path(plot).stem.replace("_", " "))
        from studio.core.data.formats import images_in, read_yaml, split_dirs

        dirs = split_dirs(read_yaml(Path(stats.data)), Path(stats.data))
        self.samples.clear()
        for split, folder in dirs.items():
            for path in images_in(folder)[:200]:
                item = QListWidgetItem(f"{split}/{path.name}")
                item.setData(Qt.ItemDataRole.UserRole, str(path))
                self.samples.addItem(item)
        if self.samples.count():
            self.samples.setCurrentRow(0)

    def show_sample(self, path: str) -> None:
        from studio.core.data.preview import labelled_image

        if not path:
            return
        try:
            rgb, count = labelled_image(Path(path), self.names)
        except ValueError as exc:
            self.window().show_error(str(exc))
            return
        self.viewer.show_rgb(rgb)
        self.viewer.setToolTip(f"{Path(path).name}: {count} objects")
