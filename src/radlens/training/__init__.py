"""Training (extra ``radlens[train]``): recipes, data, loop, calibration and ONNX export.

The only radlens package that imports torch.
"""
