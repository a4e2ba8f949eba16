"""Testing with Concept Activation Vectors (TCAV, Kim et al., ICML 2018) and FastCAV.

``cavs``: concept activation vectors from example sets (the SGD linear SVM of the reference
code, and FastCAV's closed form); ``stats``: the TCAV score, the two-sided t-test against
random CAVs and the Holm correction; ``experiment``: directional derivatives of a class logit at
a tapped layer and the whole test (concepts x random runs x layers); ``sets``: concept example
sets and random counter-example sets read from folders.
"""

from conceptlab.tcav.cavs import CAV_METHODS, CAVFit, fast_cav, fit_cav, svm_cav
from conceptlab.tcav.stats import holm, tcav_score, two_sided_ttest

__all__ = ["CAV_METHODS", "CAVFit", "fast_cav", "fit_cav", "holm", "svm_cav", "tcav_score",
           "two_sided_ttest"]
