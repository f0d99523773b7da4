"""Compress page: the wizard from a float model to a deployed int8 one, one step at a time.

Steps: model -> data -> recipe -> run -> compare -> export -> deploy. Each step is a
widget with `title`, `enter()`, `blocked()` (why Next is not allowed yet, or None) and
`cli()` (the command that does the same from a terminal, shown under the steps).
"""
from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.wizard import WizardState
from studio.gui.wizard.deliver_steps import DeployStep, ExportStep
from studio.gui.wizard.result_steps import CompareStep, RunStep
from studio.gui.wizard.setup_steps import DataStep, ModelStep, RecipeStep


class CompressPage(QWidget):
    def __init__(self, jobs, parent=None):
        super().__init__(parent)
        self.state = WizardState()
        self.steps = [ModelStep(self.state), DataStep(self.state, jobs), RecipeStep(self.state),
                      RunStep(self.state, jobs), CompareStep(self.state), ExportStep(self.state),
                      DeployStep(self.state, jobs)]
        self.crumbs = []
        trail = QHBoxLayout()
        for i, step in enumerate(self.steps):
            crumb = QPushButton(f"{i + 1}  {step.title}")
            crumb.setFlat(True)
            crumb.clicked.connect(lambda _=False, i=i: self.go(i))
            self.crumbs.append(crumb)
            trail.addWidget(crumb)
        trail.addStretch(1)
        self.stack = QStackedWidget()
        for step in self.steps:
            self.stack.addWidget(step)
            step.changed.connect(self.refresh)
        self.command = QLineEdit()
        self.command.setReadOnly(True)
        self.command.setObjectName("cli-twin")
        copy = QPushButton("Copy")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.command.text()))
        self.back, self.next = QPushButton("< Back"), QPushButton("Next >")
        self.back.clicked.connect(lambda: self.go(self.current - 1))
        self.next.clicked.connect(lambda: self.go(self.current + 1))
        self.why = QLabel()
        self.why.setStyleSheet("color: #a05a00")
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("Same from a terminal:"))
        bottom.addWidget(self.command, 1)
        bottom.addWidget(copy)
        nav = QHBoxLayout()
        nav.addWidget(self.why, 1)
        nav.addWidget(self.back)
        nav.addWidget(self.next)
        layout = QVBoxLayout(self)
        layout.addLayout(trail)
        layout.addWidget(self.stack, 1)
        layout.addLayout(bottom)
        layout.addLayout(nav)
        self.current = 0
        self._show(0)

    def step(self, name: str):
        """The step widget with this title (tests and the screenshots drive the wizard through it)."""
        return next(s for s in self.steps if s.title == name)

    def go(self, index: int) -> None:
        """Show step `index`; moving forward needs every step before it to be complete."""
        if not 0 <= index < len(self.steps):
            return
        busy = next((i for i, s in enumerate(self.steps) if s.busy()), None)
        if busy is not None and index < busy:
            self.window().show_error(f"the {self.steps[busy].title.lower()} step is still working: cancel it "
                                     "before changing the steps before it")
            return
        for i in range(self.current, index):
            reason = self.steps[i].blocked()
            if reason:
                self._show(i)
                self.window().show_error(reason)
                return
        self._show(index)

    def _show(self, index: int) -> None:
        self.current = index
        self.stack.setCurrentIndex(index)
        self.steps[index].enter()
        self.refresh()

    def refresh(self) -> None:
        step = self.steps[self.current]
        self.command.setText(step.cli())
        reason = step.blocked()
        self.why.setText(reason or "")
        self.back.setEnabled(self.current > 0)
        self.next.setEnabled(self.current < len(self.steps) - 1 and reason is None)
        for i, crumb in enumerate(self.crumbs):
            crumb.setStyleSheet("font-weight: bold; text-decoration: underline" if i == self.current else "")
