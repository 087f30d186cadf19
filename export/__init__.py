"""pocketlm.export: checkpoint folder → model folder (ONNX graphs checked against torch)."""

from .onnx_export import CHECK_SHAPES, ExportConfig, ExportError, ScoreGraph, StepGraph, export

__all__ = ["CHECK_SHAPES", "ExportConfig", "ExportError", "ScoreGraph", "StepGraph", "export"]
