"""Datasets: formats, synthetic generation, statistics. Everything on disk is YOLO layout + data.yaml."""
