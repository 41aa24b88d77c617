"""Model evaluation: metrics (numpy only) and ``evaluate`` over labelled data via ONNX."""
