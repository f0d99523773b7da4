"""The wizard's first steps: the model (and its teacher), the data, and the compression recipe."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from deploy.convert.rknn_convert import ALGORITHMS, PLATFORMS
from deploy.errors import UserError
from deploy.runtime.sources import IMAGE_SUFFIXES
from studio.core.compress.kd_config import KD_TERMS
from studio.core.compress.options import CRITERIA
from studio.core.compress.recipe import plan_problem
from studio.core.demo import BUNDLED_STUDENT, BUNDLED_TEACHER
from studio.core.wizard import PRESETS, compress_command, q, recipe_text
from studio.gui.common import PathField
from studio.gui.wizard.step import Step, form


def _spin(low: int, high: int, value: int, step: int = 1, special: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    if special:
        box.setSpecialValueText(special)
    return box


def _card(model: Path) -> str:
    """What the model's provenance card (model.json beside it) says of its training, if it can be read."""
    try:
        info = json.loads(model.with_suffix(".json").read_text())
        val = info["evaluation"]["val"]
        return f", trained at {int(info['imgsz'])} px, val mAP50-95 {float(val['map50_95']):.3f}"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


class ModelStep(Step):
    title = "Model"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.model = PathField("a trained float checkpoint (.pt)", name_filter="Checkpoints (*.pt)", key="wiz-model")
        self.teacher = PathField("a larger trained model of the same classes (.pt), for distillation",
                                 name_filter="Checkpoints (*.pt)", key="wiz-teacher")
        for field, default in ((self.model, BUNDLED_STUDENT), (self.teacher, BUNDLED_TEACHER)):
            field.setText(str(default) if default.is_file() else "")
            field.edit.textChanged.connect(self._update)
        self.about = QLabel()
        self.about.setWordWrap(True)
        self.lay_out("Start from a float detector: yours, or a pretrained one of other classes (a COCO yolov8n.pt), "
                     "which the run first fine-tunes to the data's classes (10 epochs). The teacher, a bigger model "
                     "trained on the same classes, guides pruning's fine-tuning and distillation. A .pt file is code: "
                     "open only checkpoints you trust.",
                     form(("Model", self.model), ("Teacher", self.teacher)), self.about)
        self._update()

    def _update(self) -> None:
        self.state.model = Path(self.model.text()) if self.model.text() else None
        self.state.teacher = Path(self.teacher.text()) if self.teacher.text() else None
        lines = []
        for role, path in (("model", self.state.model), ("teacher", self.state.teacher)):
            if path and path.is_file():
                lines.append(f"{role}: {path.name}, {path.stat().st_size / 1e6:.1f} MB{_card(path)}")
        self.about.setText("\n".join(lines))
        self.changed.emit()

    def blocked(self) -> str | None:
        if not self.state.model or not self.state.model.is_file():
            return "choose the float model to compress (a .pt checkpoint)"
        if self.state.teacher and not self.state.teacher.is_file():
            return f"{self.state.teacher}: no such teacher checkpoint"
        return None

    def cli(self) -> str:
        return f"studio models inspect {q(self.state.model)}" if self.state.model else ""


class DataStep(Step):
    title = "Data"

    def __init__(self, state, jobs, parent=None):
        super().__init__(state, parent)
        self.jobs = jobs
        self.data = PathField("a data.yaml (YOLO layout)", name_filter="Datasets (data.yaml *.yaml)", key="wiz-data")
        default = next((p for p in (Path("out/demo/data/data.yaml"), Path("out/assets/data/data.yaml"))
                        if p.is_file()), None)
        self.data.setText(str(default) if default else "")
        self.data.edit.textChanged.connect(self._update)
        self.images = _spin(20, 20000, 300, 50)
        self.generate_button = QPushButton("Generate synthetic data")
        self.generate_button.clicked.connect(self.generate)
        self.import_button = QPushButton("Import a dataset (Data page)…")
        self.import_button.clicked.connect(lambda: self.window().show_page("Data"))
        self.splits = QLabel()
        self.last_generated: Path | None = None
        row = QHBoxLayout()
        row.addWidget(QLabel("Synthetic images"))
        row.addWidget(self.images)
        row.addWidget(self.generate_button)
        row.addStretch(1)
        row.addWidget(self.import_button)
        self.lay_out("The data to fine-tune, distil, calibrate and score on: its train split trains and calibrates, "
                     "its val split decides which variant wins.", form(("data.yaml", self.data)), row, self.splits)
        self._update()

    def _update(self) -> None:
        from studio.core.data.formats import read_yaml, split_dirs

        text = self.data.text()
        self.state.data = Path(text) if text else None
        self.counts = {}
        if self.state.data and self.state.data.is_file():
            try:
                dirs = split_dirs(read_yaml(self.state.data), self.state.data)
                self.counts = {k: sum(1 for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                               for k, d in dirs.items()}
            except UserError as exc:
                self.splits.setText(str(exc))
        if self.counts:
            self.splits.setText("images: " + ", ".join(f"{k} {n}" for k, n in self.counts.items()))
        self.changed.emit()

    def generate(self) -> None:
        from studio.core.data.synth import SynthConfig, generate

        folder = self.state.folder / "data"
        count = self.images.value()
        self.last_generated = folder
        self.generate_button.setEnabled(False)
        cfg = SynthConfig(folder, images=count, size=320, force=True)  # the wizard's own folder
        self.jobs.start("Synthetic data", lambda job: generate(cfg, job.stepper("synthetic data")),
                        on_success=lambda path: (self.data.setText(str(path)), self._update(),
                                                 self.generate_button.setEnabled(True)),
                        on_failure=lambda m: (self.window().show_error(m), self.generate_button.setEnabled(True)))

    def blocked(self) -> str | None:
        if not self.state.data or not self.state.data.is_file():
            return "choose a data.yaml, generate synthetic data or import a dataset"
        if not self.counts.get("train") or not self.counts.get("val"):
            return f"{self.state.data}: needs images in its train and val splits"
        return None

    def cli(self) -> str:
        if self.last_generated and self.state.data == self.last_generated / "data.yaml":
            return f"studio data synth --out {q(self.last_generated)} --images {self.images.value()} --size 320"
        return f"studio data stats {q(self.state.data)}" if self.state.data else ""


class RecipeStep(Step):
    title = "Recipe"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.about = QLabel()
        self.about.setWordWrap(True)
        self.prune = QGroupBox("Prune (structured: whole channels)")
        self.prune.setCheckable(True)
        self.flops = QDoubleSpinBox()
        self.flops.setRange(0.1, 0.95)
        self.flops.setSingleStep(0.05)
        self.criterion = QComboBox()
        self.criterion.addItems(list(CRITERIA))
        self.finetune = _spin(0, 100, 1)
        self.prune.setLayout(form(("Keep this share of GFLOPs", self.flops), ("Criterion", self.criterion),
                                  ("Fine-tune epochs", self.finetune)))
        self.fit = QGroupBox("Fit to the data's classes (the model detects other classes)")
        self.fit_epochs = _spin(1, 300, 10)
        self.fit.setLayout(form(("Fine-tune epochs", self.fit_epochs)))
        self.fit.setVisible(False)
        self.distill = QGroupBox("Distill from the teacher")
        self.distill.setCheckable(True)
        self.distill_epochs = _spin(1, 300, 10)
        self.terms = {t: QCheckBox(t) for t in KD_TERMS}
        terms = QHBoxLayout()
        for box in self.terms.values():
            terms.addWidget(box)
        self.distill.setLayout(form(("Epochs", self.distill_epochs), ("Terms", terms)))
        self.quant = QComboBox()
        self.quant.addItems(["QAT (trained int8)", "PTQ only (calibrated)"])
        self.qat_epochs = _spin(1, 100, 3)
        self.bits = QComboBox()
        self.bits.addItems(["8", "16,8", "16,12,8"])
        self.tune_teacher = QCheckBox("tune the teacher for the low-bit student")
        self.algorithms = {a: QCheckBox(a) for a in ALGORITHMS}
        algorithms = QHBoxLayout()
        for box in self.algorithms.values():
            algorithms.addWidget(box)
        quant_box = QGroupBox("Quantize to int8")
        quant_box.setLayout(form(("Method", self.quant), ("QAT epochs", self.qat_epochs),
                                 ("Bit-width steps", self.bits), ("", self.tune_teacher),
                                 ("Also PTQ with", algorithms)))
        self.imgsz = _spin(64, 1280, 320, 32)
        self.val_images = _spin(0, 100000, 0, 50, "all")
        self.calib = _spin(1, 5000, 100, 10)
        self.platform = QComboBox()
        self.platform.addItems(list(PLATFORMS))
        general = QGroupBox("Everywhere")
        general.setLayout(form(("Image size", self.imgsz), ("Val images scored", self.val_images),
                               ("Calibration images", self.calib), ("Board platform", self.platform)))
        self.yaml = QPlainTextEdit()
        self.yaml.setReadOnly(True)
        grid = QGridLayout()
        grid.addWidget(self.fit, 0, 0, 1, 2)
        grid.addWidget(self.prune, 1, 0)
        grid.addWidget(self.distill, 2, 0)
        grid.addWidget(quant_box, 1, 1)
        grid.addWidget(general, 2, 1)
        top = QHBoxLayout()
        top.addWidget(QLabel("Preset"))
        top.addWidget(self.preset)
        top.addWidget(self.about, 1)
        left = QVBoxLayout()
        left.addWidget(self.intro("Choose what the chain does. Presets fill in sensible settings; change any of "
                                  "them. The recipe file on the right is what runs (and what `studio compress "
                                  "--recipe` reads)."))
        left.addLayout(top)
        left.addLayout(grid)
        left.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 3)
        layout.addWidget(self.yaml, 2)
        self._loading = False
        self._fits = False
        self.preset.currentTextChanged.connect(self.apply_preset)
        for signal in (self.prune.toggled, self.flops.valueChanged, self.criterion.currentTextChanged,
                       self.finetune.valueChanged, self.distill.toggled, self.distill_epochs.valueChanged,
                       self.quant.currentIndexChanged, self.qat_epochs.valueChanged, self.bits.currentTextChanged,
                       self.tune_teacher.toggled, self.imgsz.valueChanged, self.val_images.valueChanged,
                       self.calib.valueChanged, self.platform.currentTextChanged, self.fit_epochs.valueChanged,
                       *(b.toggled for b in (*self.terms.values(), *self.algorithms.values()))):
            signal.connect(self._update)
        self.apply_preset(self.preset.currentText())

    def apply_preset(self, name: str) -> None:
        """Fill every control from the preset; the sections it leaves out are switched off."""
        about, sections = PRESETS[name]
        self._base = sections
        self._loading = True
        self.about.setText(about)
        prune, distill, qat = (sections.get(k) for k in ("prune", "distill", "qat"))
        self.prune.setChecked(prune is not None)
        if prune:
            self.flops.setValue(prune["target_flops"])
            self.criterion.setCurrentText(prune["criterion"])
            self.finetune.setValue(prune.get("finetune_epochs", 0))
        self.distill.setChecked(distill is not None)
        if distill:
            self.distill_epochs.setValue(distill["epochs"])
            for term, box in self.terms.items():
                box.setChecked(term in distill["kd"].split(","))
        self.quant.setCurrentIndex(0 if qat else 1)
        if qat:
            self.qat_epochs.setValue(qat["epochs"])
            self.bits.setCurrentText(",".join(map(str, qat["bits"])))
            self.tune_teacher.setChecked(bool(qat.get("tune_teacher")))
        for algorithm, box in self.algorithms.items():
            box.setChecked(algorithm in sections["export"]["ptq"])
        self.calib.setValue(sections["export"]["calib_count"])
        self._loading = False
        self._update()

    def recipe(self) -> dict:
        """imgsz and the stage sections, from the controls (over the preset's other keys)."""
        recipe: dict = {"imgsz": self.imgsz.value()}
        limit = self.val_images.value() or None
        scored = {"val_limit": limit} if limit else {}
        if self._fits:
            recipe["finetune"] = {"epochs": self.fit_epochs.value(), **scored}
        if self.prune.isChecked():
            base = self._base.get("prune", {"round_to": 16})
            recipe["prune"] = {**base, "target_flops": round(self.flops.value(), 2), **scored,
                               "criterion": self.criterion.currentText(), "finetune_epochs": self.finetune.value()}
        if self.distill.isChecked():
            recipe["distill"] = {"epochs": self.distill_epochs.value(),
                                 "kd": ",".join(t for t, b in self.terms.items() if b.isChecked()),
                                 **scored}
        if self.quant.currentIndex() == 0:
            recipe["qat"] = {**self._base.get("qat", {}), "epochs": self.qat_epochs.value(),
                             "bits": [int(b) for b in self.bits.currentText().split(",")],
                             "tune_teacher": self.tune_teacher.isChecked(), **scored}
        recipe["export"] = {"platform": self.platform.currentText(), "calib_count": self.calib.value(),
                            "ptq": [a for a, b in self.algorithms.items() if b.isChecked()]}
        recipe["verify"] = {"limit": limit}
        return recipe

    def _update(self) -> None:
        if self._loading:
            return
        for widget in (self.qat_epochs, self.bits, self.tune_teacher):
            widget.setEnabled(self.quant.currentIndex() == 0)
        self.state.recipe = self.recipe()
        self.yaml.setPlainText(recipe_text(self.state.full_recipe()))
        self.changed.emit()

    def enter(self) -> None:
        self._fits = self._model_needs_fitting()
        self.fit.setVisible(self._fits)
        self._update()  # the model and data may have changed since

    def _model_needs_fitting(self) -> bool:
        """The chosen model detects other classes than the chosen data (a COCO checkpoint on your dataset)."""
        from studio.core.data.formats import read_yaml, yaml_names
        from studio.core.models import detects

        model, data = self.state.model, self.state.data
        if not (model and data and Path(model).is_file() and Path(data).is_file()):
            return False
        try:
            return not detects(model, yaml_names(read_yaml(Path(data)), Path(data)))
        except UserError:
            return False  # a bad file: the run says so, in one line

    def blocked(self) -> str | None:
        recipe = self.state.recipe
        if "distill" in recipe and not recipe["distill"]["kd"]:  # the wizard's rule: plain fine-tuning is not
            return "choose at least one distillation term, or switch distillation off"  # what its box offers
        return plan_problem(self.state.full_recipe())

    def cli(self) -> str:
        return compress_command(self.state.recipe_path, self.state.chain, resume=False)
