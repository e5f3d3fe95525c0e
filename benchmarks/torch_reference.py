"""The same 1-D EfficientNet in eager PyTorch, as peer codebases would write it.

Only the benchmark uses it, to compare training throughput on the same machine;
PyTorch is not a dependency of ahms_fm (install it by hand to run this part).
"""

from __future__ import annotations

from torch import nn

from ahms_fm.models.efficientnet import HEAD_MULTIPLIER, PAPER_STAGES, STEM_MULTIPLIER


class SamePadConv1d(nn.Conv1d):
    """Conv1d with TensorFlow "same" padding (asymmetric when the stride is 2)."""

    def forward(self, x):
        length, k, s = x.shape[-1], self.kernel_size[0], self.stride[0]
        out = -(-length // s)
        total = max((out - 1) * s + k - length, 0)
        x = nn.functional.pad(x, (total // 2, total - total // 2))
        return nn.functional.conv1d(x, self.weight, self.bias, s, 0, 1, self.groups)


def _bn(c):
    return nn.BatchNorm1d(c, eps=1e-3, momentum=0.1)


class MBConv(nn.Module):
    def __init__(self, cin, cout, kernel, stride, expansion):
        super().__init__()
        hidden = cin * expansion
        layers = []
        if expansion != 1:
            layers += [nn.Conv1d(cin, hidden, 1, bias=False), _bn(hidden), nn.SiLU()]
        layers += [
            SamePadConv1d(hidden, hidden, kernel, stride, groups=hidden, bias=False),
            _bn(hidden),
            nn.SiLU(),
        ]
        self.body = nn.Sequential(*layers)
        reduced = max(1, int(0.25 * hidden))
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool1d(1), nn.Conv1d(hidden, reduced, 1), nn.SiLU(),
            nn.Conv1d(reduced, hidden, 1), nn.Sigmoid(),
        )
        self.project = nn.Sequential(nn.Conv1d(hidden, cout, 1, bias=False), _bn(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        h = self.body(x)
        h = self.project(h * self.se(h))
        return h + x if self.residual else h


class TorchEfficientNet1D(nn.Module):
    """[batch, channels, time] -> [batch, embed_dim] (PyTorch's channels-first layout)."""

    def __init__(self, in_channels, embed_dim=256, expansion=7):
        super().__init__()
        f = embed_dim / HEAD_MULTIPLIER
        width = int(STEM_MULTIPLIER * f)
        layers = [SamePadConv1d(in_channels, width, 3, 2, bias=False), _bn(width), nn.SiLU()]
        for i, (k, kernel, repeats, stride) in enumerate(PAPER_STAGES):
            out = int(k * f)
            for r in range(repeats):
                layers.append(
                    MBConv(width, out, kernel, stride if r == 0 else 1, 1 if i == 0 else expansion)
                )
                width = out
        layers += [nn.Conv1d(width, embed_dim, 1, bias=False), _bn(embed_dim), nn.SiLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x).mean(dim=-1)
