"""Study-design classifier: predicts rct / preclinical / cohort / case_control / cross_sectional from text.

Used when a record has no indexed publication types yet. `train.py` fits it on labelled real abstracts;
`model.py` loads the committed JSON weights and predicts with numpy only.
"""

from synthesis.design_classifier.model import (
    LABELS,
    DesignModel,
    DesignPrediction,
    ModelFileError,
    predict_design,
)

__all__ = ["LABELS", "DesignModel", "DesignPrediction", "ModelFileError", "predict_design"]
