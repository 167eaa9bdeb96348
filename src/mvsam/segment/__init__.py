"""The segmentation modes: interactive multi-view, automatic, video tracking."""
