"""Parity of ``discover --method craft`` with deel-ai/Craft ``craft_torch.py`` ``Craft.fit``:
the patch arithmetic transcribed from the reference (unfold, stride int(0.8 p), transpose,
view, bilinear resize back) and xplique's NMF(alpha_W=1e-2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conceptlab.discover.base import build_dictionary
from conceptlab.discover.craft import extract_grid, grid_boxes, grid_patches
from conceptlab.discover.sources import SourceError
from tests.discover.test_sources import SIZE, images, tapped


def reference_patches(inputs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Craft.fit's lines, transcribed."""
    strides = int(patch_size * 0.80)
    patches = torch.nn.functional.unfold(inputs, kernel_size=patch_size, stride=strides)
    return patches.transpose(1, 2).contiguous().view(-1, inputs.shape[1], patch_size,
                                                     patch_size)


@pytest.mark.parametrize(("size", "patch"), [(20, 7), (16, 5), (12, 12), (13, 4)])
def test_grid_patches_match_the_reference_unfold(size: int, patch: int) -> None:
    x = torch.arange(2 * 3 * size * size, dtype=torch.float32).reshape(2, 3, size, size)
    ours = grid_patches(x, patch)
    ref = reference_patches(x, patch)
    assert ours.shape == ref.shape
    assert torch.equal(ours, ref)
    boxes = grid_boxes(size, patch, 2)  # each box crops exactly its patch, in the same order
    crops = torch.stack([x[i // (len(boxes) // 2), :, t:t + s, left:left + s]
                         for i, (left, t, s) in enumerate(boxes)])
    assert torch.equal(crops, ref)


def test_stride_is_int_of_four_fifths() -> None:
    # p = 7: stride int(5.6) = 5 -> offsets 0, 5, 10 on 20 pixels (3 x 3 patches)
    assert grid_patches(torch.zeros(1, 1, 20, 20), 7).shape[0] == 9
    # p = 4: stride int(3.2) = 3 -> offsets 0, 3, 6, 9 on 13 pixels (4 x 4)
    assert grid_patches(torch.zeros(1, 1, 13, 13), 4).shape[0] == 16
    with pytest.raises(SourceError):
        grid_patches(torch.zeros(1, 1, 8, 8), 9)


def test_extract_grid_reads_resized_patches_through_the_model() -> None:
    t = tapped("conv2")
    ims = images(2)
    acts = extract_grid(t, ims, patch=8)
    x = t.preprocess(ims)
    ref = reference_patches(x, 8)
    ref = torch.nn.functional.interpolate(ref, size=(SIZE, SIZE), mode="bilinear",
                                          align_corners=False)
    want = t.latent(ref).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(acts.rows, want, rtol=1e-5, atol=1e-6)
    assert acts.item.tolist() == [0] * 4 + [1] * 4  # offsets 0, 6 on 16 pixels
    # boxes scaled from the 16-pixel input back to the 24-pixel image
    assert acts.boxes is not None and acts.boxes[1].tolist() == [9, 0, 12]


def test_craft_nmf_is_sklearn_nmf_with_alpha_w() -> None:
    from sklearn.decomposition import NMF

    A = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    ref = NMF(n_components=3, alpha_W=1e-2)
    U_ref = ref.fit_transform(A)
    d = build_dictionary("craft", 3)
    d.fit(A)
    np.testing.assert_allclose(d.dictionary, ref.components_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.encode(A), ref.transform(A), rtol=1e-4, atol=1e-5)
    assert U_ref.shape == (40, 3)
    plain = build_dictionary("craft", 3, alpha_W=0.0).fit(A)
    assert not np.allclose(plain.dictionary, d.dictionary)  # the penalty changes the atoms
    with pytest.raises(Exception, match="alpha_W"):
        build_dictionary("craft", 3, alpha_W=-1.0)
