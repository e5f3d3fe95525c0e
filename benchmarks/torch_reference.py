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
            nn.AdaptiveAvgPool1d(1),
            nn.Conv1d(hidden, reduced, 1),
            nn.SiLU(),
            nn.Conv1d(reduced, hidden, 1),
            nn.Sigmoid(),
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


# ----------------------------------------------------------------------------
# The whole self-supervised training step (benchmarks/memory.py): student =
# encoder + projection head, an EMA teacher run under no_grad, the symmetric
# participant-masked InfoNCE + KoLeo of ahms_fm/losses.py, and Adam with L2
# weight decay, as a peer PyTorch codebase would write it.
# ----------------------------------------------------------------------------


class TorchStudent(nn.Module):
    """Encoder + projection head (Linear -> ReLU -> dropout -> Linear)."""

    def __init__(
        self, in_channels, embed_dim=256, expansion=7, hidden_dim=1024, out_dim=128, dropout=0.1
    ):
        super().__init__()
        self.encoder = TorchEfficientNet1D(in_channels, embed_dim, expansion)
        self.head = nn.Sequential(
            nn.Linear(embed_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x):
        return self.head(self.encoder(x))


def info_nce(u, v, ids, temperature=0.04):
    """ahms_fm.losses.info_nce in PyTorch (participant-masked, both anchors)."""
    import torch

    u, v = nn.functional.normalize(u, dim=-1), nn.functional.normalize(v, dim=-1)
    same = ids[:, None] == ids[None, :]
    diagonal = torch.eye(len(u), dtype=torch.bool)
    uv, uu, vv = (u @ v.T) / temperature, (u @ u.T) / temperature, (v @ v.T) / temperature
    positive = torch.diagonal(uv)

    def anchor(cross, within):
        neg = torch.cat(
            [cross.masked_fill(diagonal, -torch.inf), within.masked_fill(same, -torch.inf)], 1
        )
        d = neg - positive[:, None]
        m = d.max(dim=1).values.clamp_min(0.0).detach()
        return m + torch.log1p(torch.expm1(-m) + torch.exp(d - m[:, None]).sum(1))

    return 0.5 * anchor(uv, uu).mean() + 0.5 * anchor(uv.T, vv).mean()


def koleo(z, eps=1e-8):
    """ahms_fm.losses.koleo in PyTorch."""
    import torch

    z = nn.functional.normalize(z, dim=-1)
    sim = (z @ z.T).masked_fill(torch.eye(len(z), dtype=torch.bool), -torch.inf)
    nearest = sim.argmax(dim=1)
    return -torch.log((z - z[nearest]).norm(dim=-1) + eps).mean()


def contrastive_objective(u, v, ids, temperature=0.04, koleo_weight=0.1):
    return info_nce(u, v, ids, temperature) + koleo_weight * 0.5 * (koleo(u) + koleo(v))


def make_ssl_train_step(
    in_channels,
    embed_dim,
    expansion,
    hidden_dim,
    out_dim,
    *,
    dropout=0.1,
    temperature=0.04,
    koleo_weight=0.1,
    momentum=0.99,
    learning_rate=1e-3,
    weight_decay=1e-5,
):
    """(student, step) where step(view_a, view_b, ids) -> loss; views [B, channels, time].

    One step: EMA teacher <- student (parameters and batch-norm running stats),
    teacher forward on both views concatenated under no_grad, student forward +
    backward on the same 2B segments, (L(s_a, t_b) + L(s_b, t_a)) / 2, Adam.
    """
    import copy

    import torch

    student = TorchStudent(in_channels, embed_dim, expansion, hidden_dim, out_dim, dropout).train()
    teacher = copy.deepcopy(student).train()
    for p in teacher.parameters():
        p.requires_grad_(False)
    s_params, t_params = list(student.parameters()), list(teacher.parameters())
    s_stats = [b for b in student.buffers() if b.is_floating_point()]
    t_stats = [b for b in teacher.buffers() if b.is_floating_point()]
    opt = torch.optim.Adam(s_params, lr=learning_rate, weight_decay=weight_decay)

    def step(view_a, view_b, ids):
        with torch.no_grad():
            torch._foreach_lerp_(t_params, s_params, 1.0 - momentum)
            torch._foreach_lerp_(t_stats, s_stats, 1.0 - momentum)
            x = torch.cat([view_a, view_b])
            t_a, t_b = teacher(x).chunk(2)
        s_a, s_b = student(x).chunk(2)
        loss = 0.5 * (
            contrastive_objective(s_a, t_b, ids, temperature, koleo_weight)
            + contrastive_objective(s_b, t_a, ids, temperature, koleo_weight)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return student, step
