"""pocketlm.export: checkpoint folder → model folder (ONNX graphs checked against torch).

The stage is :func:`pocketlm.export.onnx_export.export`, configured by
:class:`pocketlm.export.config.ExportConfig`; int8 copies come from :mod:`.quantize`, the
ORT-format graphs and shared weights from :mod:`.portable`.
"""
