"""Fitting a linear map from image features to a text space on captions (LiMBeR), and the
retrieval metrics that choose and judge it. The fitted map is the ``linear:DIR`` encoder."""

from conceptlab.align.fit import (
    AlignData,
    Candidate,
    fit_contrastive,
    fit_ridge,
    select_candidate,
)
from conceptlab.align.retrieval import caption_gallery, recall_at_k

__all__ = ["AlignData", "Candidate", "caption_gallery", "fit_contrastive", "fit_ridge",
           "recall_at_k", "select_candidate"]
