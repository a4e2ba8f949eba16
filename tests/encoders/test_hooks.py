"""Hook points: capture and edit match a manual forward, and hooks never outlive their block."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conceptlab.hooks import HookError, capture, edit, get_module, hook_names, reduce_tensor


class TupleLayer(nn.Module):
    """Returns (hidden, extra) like a Hugging Face layer."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lin(x), x.sum(-1)


class TokenNet(nn.Module):
    def __init__(self, d: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, d)
        self.layers = nn.ModuleList([TupleLayer(d), TupleLayer(d)])
        self.head = nn.Linear(d, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        for layer in self.layers:
            h = layer(h)[0]
        return self.head(h[:, -1])


@pytest.fixture()
def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(4, 5, 3, stride=2)), nn.Flatten(),
                         nn.Linear(80, 2))


@pytest.fixture()
def x() -> torch.Tensor:
    return torch.randn(3, 3, 9, 9, generator=torch.Generator().manual_seed(1))


def n_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_capture_matches_manual_forward(cnn: nn.Module, x: torch.Tensor) -> None:
    with capture(cnn, ["0", "2.0"], reduce="none") as acts:
        out = cnn(x)
    first = cnn[0](x)
    second = cnn[2](cnn[1](first))
    torch.testing.assert_close(acts["0"], first)
    torch.testing.assert_close(acts["2.0"], second)
    torch.testing.assert_close(out, cnn[4](cnn[3](second)))
    assert set(acts) == {"0", "2.0"} and n_hooks(cnn) == 0


def test_capture_reductions_and_repeated_calls(cnn: nn.Module, x: torch.Tensor) -> None:
    with capture(cnn, "2.0", reduce="mean") as acts:
        cnn(x[:2])
        cnn(x[2:])
    full = cnn[2](cnn[1](cnn[0](x)))
    assert acts["2.0"].shape == (3, 5)  # calls concatenated along the batch
    torch.testing.assert_close(acts["2.0"], full.mean(dim=(2, 3)))
    assert len(acts.calls("2.0")) == 2
    with capture(cnn, "2.0", reduce="max") as acts:
        cnn(x)
    torch.testing.assert_close(acts["2.0"], full.amax(dim=(2, 3)))
    with capture(cnn, "2.0", reduce="flatten") as acts:
        cnn(x)
    assert acts["2.0"].shape == (3, 5 * 4 * 4)


def test_hooks_removed_after_exception(cnn: nn.Module, x: torch.Tensor) -> None:
    with pytest.raises(RuntimeError, match="boom"), capture(cnn, ["0", "2.0"]):
        cnn(x)
        raise RuntimeError("boom")
    assert n_hooks(cnn) == 0
    # an error raised inside a hook (wrong reduction for a conv map) also leaves no hook behind
    with pytest.raises(HookError, match="token sequence"), capture(cnn, "0", reduce="cls"):
        cnn(x)
    assert n_hooks(cnn) == 0
    with pytest.raises(ZeroDivisionError), edit(cnn, "0", lambda h: h * 0):
        _ = 1 / 0
    assert n_hooks(cnn) == 0


def test_unknown_hook_name_lists_close_matches(cnn: nn.Module) -> None:
    model = TokenNet()
    with pytest.raises(HookError, match=r"did you mean 'layers\.1'"):
        get_module(model, "layer.1")
    # nothing is registered when any one name is wrong
    with pytest.raises(HookError), capture(cnn, ["0", "nope"]):
        pass
    assert n_hooks(cnn) == 0
    assert hook_names(model)[:3] == ["embed", "layers", "layers.0"]


def test_top_level_hint_unknown_reduce_and_never_ran(cnn: nn.Module) -> None:
    with pytest.raises(HookError, match="top-level names"):
        get_module(TokenNet(), "zzzzzz")
    with pytest.raises(HookError, match="unknown reduce"), capture(cnn, "0", reduce="median"):
        pass
    with capture(cnn, "0") as acts:
        pass
    with pytest.raises(HookError, match="never ran"):
        acts["0"]


def test_tuple_outputs_and_token_reductions() -> None:
    torch.manual_seed(0)
    model = TokenNet()
    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    with capture(model, "layers.0", reduce="none") as full, \
            capture(model, "layers.0", reduce="mean", mask=mask) as mean, \
            capture(model, "layers.0", reduce="last", mask=mask) as last, \
            capture(model, "layers.0", reduce="cls") as cls:
        model(ids)
    h = model.layers[0](model.embed(ids))[0]
    torch.testing.assert_close(full["layers.0"], h)
    torch.testing.assert_close(mean["layers.0"][0], h[0, :3].mean(0))
    torch.testing.assert_close(mean["layers.0"][1], h[1, :2].mean(0))
    torch.testing.assert_close(last["layers.0"], torch.stack([h[0, 2], h[1, 1]]))
    torch.testing.assert_close(cls["layers.0"], h[:, 0])
    masked_max = reduce_tensor(h, "max", mask)
    torch.testing.assert_close(masked_max[1], h[1, :2].amax(0))
    with pytest.raises(HookError, match="mask shape"):
        reduce_tensor(h, "mean", mask[:, :2])


def test_edit_replaces_output_and_keeps_tuple_rest() -> None:
    torch.manual_seed(0)
    model = TokenNet()
    ids = torch.tensor([[1, 2, 3]])
    base = model(ids)
    with edit(model, "layers.1", lambda h: torch.zeros_like(h)):
        zeroed = model(ids)
    torch.testing.assert_close(zeroed, model.head.bias.expand(1, 3))
    seen = {}

    def grab(h: torch.Tensor) -> torch.Tensor:
        seen["h"] = h
        return h

    with edit(model, "layers.0", lambda h: h + 1), edit(model, "layers.1", grab):
        model(ids)
    h0 = model.layers[0](model.embed(ids))[0] + 1
    torch.testing.assert_close(seen["h"], model.layers[1](h0)[0])
    torch.testing.assert_close(model(ids), base)  # edits are gone afterwards
    assert n_hooks(model) == 0
    with pytest.raises(HookError, match="must return a tensor of shape"), \
            edit(model, "layers.0", lambda h: h[:, :1]):
        model(ids)
    assert n_hooks(model) == 0


def test_capture_can_keep_the_graph(cnn: nn.Module, x: torch.Tensor) -> None:
    with capture(cnn, "0", reduce="mean", detach=False) as acts:
        cnn(x).sum().backward()
    assert acts["0"].requires_grad
    with capture(cnn, "0", reduce="mean", to_cpu=True) as acts:
        cnn(x)
    assert not acts["0"].requires_grad and acts["0"].device.type == "cpu"
