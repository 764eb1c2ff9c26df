"""See where attention looks: capture gate outputs, Grad-CAM, localisation scores, figures."""

from .capture import AttentionRecord, attention_modules, capture_attention
from .gradcam import grad_cam
from .localisation import box_mask, localisation_scores, mass_in_box, uniform_share

__all__ = ["AttentionRecord", "attention_modules", "box_mask", "capture_attention", "grad_cam", "localisation_scores", "mass_in_box", "uniform_share"]
