"""Small layers shared by SAM's image encoder, prompt encoder and mask decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from masktron.models.sam.inplace import Scratch, activation_, linear_into


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) feature map.

    Parameter names (`weight`, `bias`) match Meta's checkpoints.

    Args:
        num_channels: C.
        eps: added to the variance.
    """

    def __init__(self, num_channels: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float -> (B, C, H, W), each pixel normalised over C.

        Computed channels-last: a channels-last input (as the mask decoder produces) is
        normalised in one pass without copies, and the output is channels-last.
        """
        nhwc = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        out = F.layer_norm(nhwc, (nhwc.shape[-1],), self.weight, self.bias, self.eps)
        return out.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


class MLPBlock(nn.Module):
    """Linear -> activation -> Linear, the feed-forward block of a transformer layer.

    Args:
        embedding_dim: input and output width.
        mlp_dim: hidden width.
        act: activation class, instantiated without arguments.
    """

    def __init__(self, *, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor, scratch: Scratch | None = None) -> torch.Tensor:
        """(..., embedding_dim) -> (..., embedding_dim).

        With `scratch` (inference), the hidden activations go into its "mlp_hidden" buffer.
        """
        # The hidden activation is our own intermediate: activated in place when inferring.
        hidden = linear_into(self.lin1, x, scratch, "mlp_hidden")
        return self.lin2(activation_(self.act, hidden))


class MLP(nn.Module):
    """`num_layers` linear layers with ReLU between them (none after the last).

    Used by the mask decoder for the hypernetworks and the IoU head; parameters are
    `layers.{i}.weight/bias` as in Meta's checkpoints.

    Args:
        input_dim: width of the input.
        hidden_dim: width of every hidden layer.
        output_dim: width of the output.
        num_layers: number of linear layers (>= 1).
        activation: activation class between layers (ReLU; SAM 2's Hiera blocks use GELU).
    """

    def __init__(
        self,
        *,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        activation: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MLP needs at least one layer, got num_layers={num_layers}")
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., input_dim) -> (..., output_dim)."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return x
