"""Accuracy against compute and against size for the chain's variants, with the Pareto fronts drawn in."""
from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

COLORS = {"float": "#7f7f7f", "qat": "#d62728"}  # PTQ variants: blue


class ParetoPlot(FigureCanvasQTAgg):
    def __init__(self, parent=None):
        self.figure = Figure(figsize=(9, 3.2), tight_layout=True)
        super().__init__(self.figure)
        self.setParent(parent)
        self.show_rows([], {"compute": [], "size": []}, None)

    def show_rows(self, rows: list[dict], fronts: dict[str, list[str]], chosen: str | None) -> None:
        self.figure.clear()
        compute, size = self.figure.subplots(1, 2)
        rknn = [r for r in rows if r.get("npu_build")]
        floats = [r for r in rows if r["format"] == "onnx"]
        panels = ((compute, rknn, lambda r: r["npu_build"]["mcycles"], "toolkit estimate, Mcycles (one NPU core)",
                   fronts["compute"]),
                  (size, rows, lambda r: r["bytes"] / 1e6, "file size, MB", fronts["size"]))
        for ax, points, x_of, label, best in panels:
            on_front = sorted((r for r in points if r["variant"] in best), key=x_of)
            if len(on_front) > 1:
                ax.plot([x_of(r) for r in on_front], [r["map50_95"] for r in on_front], "--", color="#999", lw=1)
            for r in points:
                ax.scatter(x_of(r), r["map50_95"], s=55, color=COLORS.get(r["variant"], "#1f77b4"), zorder=3)
                ax.annotate(r["variant"], (x_of(r), r["map50_95"]), textcoords="offset points", xytext=(6, 4),
                            fontsize=8)
                if r["variant"] == chosen:
                    ax.scatter(x_of(r), r["map50_95"], s=200, facecolors="none", edgecolors="black", zorder=4)
            ax.set_xlabel(label, fontsize=8)
            ax.set_ylabel("val mAP50-95", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
        for r in floats:  # the float model has no NPU estimate: its accuracy is the reference line
            compute.axhline(r["map50_95"], color=COLORS["float"], ls=":", lw=1, label="float accuracy")
        if floats:
            compute.legend(fontsize=8, loc="lower right")
        compute.set_title("accuracy vs compute (int8 variants)", fontsize=9)
        size.set_title("accuracy vs size", fontsize=9)
        if not rows:
            for ax in (compute, size):
                ax.text(0.5, 0.5, "run the recipe to see its variants", ha="center", transform=ax.transAxes)
        self.draw_idle()
