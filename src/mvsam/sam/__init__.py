"""Segment Anything: the model (no I/O), verified weights, the cached predictor, automatic masks."""
