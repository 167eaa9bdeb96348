"""Segment Anything: the model (no I/O), verified weights, the cached predictor, automatic masks.

``load_predictor`` is the stable entry point other tools call::

    from mvsam.sam import load_predictor
    predictor = load_predictor("mobile_sam", checkpoint=None)
    predictor.set_image(image)  # HxWx3 uint8 RGB
    masks, scores, low_res_logits = predictor.predict(points=[[x, y]], labels=[1])
"""

from mvsam.sam.automatic import AutoMask, AutomaticMaskGenerator
from mvsam.sam.predictor import ImageEmbedding, Prediction, Prompt, SamPredictor, load_predictor

__all__ = [
    "AutoMask",
    "AutomaticMaskGenerator",
    "ImageEmbedding",
    "Prediction",
    "Prompt",
    "SamPredictor",
    "load_predictor",
]
