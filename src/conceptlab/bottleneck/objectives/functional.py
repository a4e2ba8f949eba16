"""Pure building blocks of the CBL objectives: each a plain function, tested on its own."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from conceptlab.errors import ConceptlabValueError


def l1_penalty(weight: Tensor) -> Tensor:
    """``||W||_1 / K`` for a CBL weight with K output units.

    Dividing by the number of concepts (as the Sparse-CBM reference does) keeps one value of
    ``lambda`` meaningful across vocabularies of different sizes: the identity initialisation
    has penalty exactly 1.
    """
    return weight.abs().sum() / weight.shape[0]


def cosine_class_similarity(acts: Tensor, association: Tensor, eps: float = 1e-8) -> Tensor:
    """``cos(a_i, A_j)`` for every example ``i`` and class row ``j`` (B x C).

    A class with no associated concept (an all-zero row) has similarity 0 to everything.
    """
    a = F.normalize(acts, dim=1, eps=eps)
    rows = F.normalize(association, dim=1, eps=eps)
    return a @ rows.T


def mass_class_similarity(probs: Tensor, association: Tensor) -> Tensor:
    """``sum_k p_ik A_jk``: the probability mass example ``i`` puts on class ``j``'s concepts.

    For a point ``p`` on the probability simplex (a Gumbel-Softmax sample) this is the
    probability that the concept drawn from ``p`` belongs to class ``j``. Unlike the cosine it
    is indifferent to how the mass is spread *within* a class's concepts: a one-hot vector on
    one of class ``j``'s concepts scores 1, exactly like the uniform vector over them.
    """
    return probs @ association.T


def clip_contrastive_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Symmetric CLIP loss between examples (rows) and classes (columns), multi-positive.

    Radford et al. 2021 ("Learning Transferable Visual Models From Natural Language
    Supervision", Fig. 3): ``(CE over rows + CE over columns) / 2`` of the similarity logits.
    Here the "texts" are class rows and several examples in a batch share a class, so

    * rows: ``-log softmax_j(logits_i)[y_i]`` averaged over the batch (all C classes compete);
    * columns: for each class ``j`` present in the batch, ``-mean_{i: y_i = j} log
      softmax_i(logits[:, j])`` (softmax over the batch's examples, mean over the class's
      positives), averaged over the present classes. This is the "mean of log-probabilities
      over positives" form (Khosla et al. 2020, SupCon, L_out); its minimum is
      ``log(#positives)`` per class, a constant that does not bias the gradient.
    """
    if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
        raise ConceptlabValueError(f"logits {tuple(logits.shape)} do not match labels "
                                   f"{tuple(y.shape)}")
    row = F.cross_entropy(logits, y)
    present = torch.unique(y)
    log_p = F.log_softmax(logits[:, present], dim=0)  # B x P, normalised over examples
    positives = (y[:, None] == present[None, :]).to(logits.dtype)
    col = -((log_p * positives).sum(0) / positives.sum(0)).mean()
    return 0.5 * (row + col)


def sample_gumbel(shape: tuple[int, ...] | torch.Size, *, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """Standard Gumbel(0, 1) noise ``-log(-log U)``, ``U ~ Uniform(0, 1)``, from ``generator``."""
    # drawn where the generator lives (a CPU generator: the same noise on every device)
    where = generator.device if generator is not None else torch.device(device)
    u = torch.rand(shape, generator=generator, dtype=dtype, device=where).to(device)
    tiny = torch.finfo(dtype).tiny
    u = u.clamp_(min=tiny, max=1.0 - torch.finfo(dtype).eps)
    return -torch.log(-torch.log(u))


def gumbel_softmax(logits: Tensor, tau: float, *, generator: torch.Generator | None = None,
                   hard: bool = False, noise: bool = True) -> Tensor:
    """Gumbel-Softmax relaxation of a categorical draw over the last axis.

    Jang et al. 2017 ("Categorical Reparameterization with Gumbel-Softmax", Eq. 1) and
    Maddison et al. 2017 (the Concrete distribution): ``y = softmax((logits + g) / tau)`` with
    ``g ~ Gumbel(0, 1)`` i.i.d. (``noise=False`` drops ``g``: the deterministic evaluation map).
    ``hard=True`` is the straight-through estimator (Jang et al. 2017, Sec. 2.2): the forward
    value is the one-hot argmax, the gradient is that of the soft sample.
    """
    if not tau > 0:
        raise ConceptlabValueError(f"temperature must be > 0, got {tau}")
    z = logits
    if noise:
        z = z + sample_gumbel(logits.shape, generator=generator, dtype=logits.dtype,
                              device=logits.device)
    soft = torch.softmax(z / tau, dim=-1)
    if not hard:
        return soft
    index = soft.argmax(dim=-1, keepdim=True)
    one_hot = torch.zeros_like(soft).scatter_(-1, index, 1.0)
    return one_hot - soft.detach() + soft


def anneal_temperature(progress: float, tau_start: float, tau_min: float) -> float:
    """Exponential annealing ``tau(t) = tau_start * (tau_min / tau_start) ** t``, ``t in [0, 1]``.

    Jang et al. 2017 (Sec. 4) anneal ``tau = max(tau_min, exp(-r t))``; this is the same
    exponential decay parameterised by its end points, reaching ``tau_min`` at ``t = 1`` and
    staying there.
    """
    t = min(max(float(progress), 0.0), 1.0)
    return float(tau_start * (tau_min / tau_start) ** t)


def cos3_similarity(pred: Tensor, target: Tensor, eps: float = 1e-12) -> Tensor:
    """Per-unit cubed-cosine similarity over a batch (K,), Label-free CBM Sec. 3.3, Eq. 2.

    ``sim(q, P) = (q_c^3 . P_c^3) / (||q_c^3|| ||P_c^3||)`` where ``x_c`` is ``x`` centred over the
    batch (column-wise) and the cube is taken element-wise: cubing emphasises the examples where
    a concept is strongly present, so a unit only has to match the target's high activations
    (Oikarinen et al. 2023, "Label-Free Concept Bottleneck Models", ICLR). A unit or target
    that is constant over the batch has similarity 0.
    """
    if pred.shape != target.shape:
        raise ConceptlabValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} "
                                   f"differ")
    p = (pred - pred.mean(0, keepdim=True)) ** 3
    t = (target - target.mean(0, keepdim=True)) ** 3
    p = p / p.norm(dim=0, keepdim=True).clamp_min(eps)
    t = t / t.norm(dim=0, keepdim=True).clamp_min(eps)
    return (p * t).sum(0)




def batch_correlations(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-unit Pearson correlation over a batch between ``pred[:, k]`` and ``target[:, k]`` (K,).

    The grounding term's similarity: unit k is tied to concept k's encoder score when this is
    near 1. A unit or target constant over the batch has correlation 0.
    """
    if pred.shape != target.shape:
        raise ConceptlabValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} "
                                   f"differ")
    p = pred - pred.mean(0, keepdim=True)
    t = target - target.mean(0, keepdim=True)
    p = p / p.norm(dim=0, keepdim=True).clamp_min(eps)
    t = t / t.norm(dim=0, keepdim=True).clamp_min(eps)
    return (p * t).sum(0)
