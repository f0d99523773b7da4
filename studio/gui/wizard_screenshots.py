"""Screenshots of each wizard step on a real Quick-look run (docs/wizard.md): about seven minutes on 2 cores."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QApplication


def shoot_wizard(app: QApplication, window, data: Path, out: Path, work: Path, wait_for) -> None:
    """Walk the Compress page from model to deploy, saving wizard-N-step.png as each step is shown."""
    page = window.page("Compress")
    window.show_page("Compress")
    steps = iter(enumerate((s.title.lower() for s in page.steps), start=1))

    def shoot() -> None:
        number, name = next(steps)
        window.grab().save(str(out / f"wizard-{number}-{name}.png"))

    def forward(then) -> None:
        page.next.click()
        QApplication.processEvents()
        then()

    def model() -> None:
        shoot()
        forward(data_step)

    def data_step() -> None:
        page.step("Data").data.setText(str(data))
        shoot()
        forward(recipe)

    def recipe() -> None:
        step = page.step("Recipe")
        step.preset.setCurrentText("Quick look")
        step.val_images.setValue(60)
        shoot()
        forward(run)

    def run() -> None:
        step = page.step("Run")
        step.folder.setText(str(work / "wizard"))
        step.start_button.click()
        wait_for(lambda: step.bars["distill"][1].value() > 0, lambda: (
            shoot(), wait_for(lambda: page.state.report is not None, lambda: forward(compare), 900000)), 900000)

    def compare() -> None:
        shoot()
        forward(export)

    def export() -> None:
        step = page.step("Export")
        step.dest.setText(str(work / "deploy"))
        step.export_button.click()
        shoot()
        forward(deploy)

    def deploy() -> None:
        shoot()
        app.quit()

    model()
