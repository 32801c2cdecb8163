"""A native crash on the CPU, guarded in `layers.conv2d`. Measured with torch 2.13 on
an AVX-512 CPU: oneDNN's 1x1 weight-gradient kernel (jit_1x1:avx512_core
backward_weights, found with gdb) writes out of bounds for a strided 1x1 convolution of
a channels_last input with fewer than 16 channels and groups=1, run on more than one
thread, at some batch sizes (odd ones, with two threads): the process aborts ("double
free or corruption") or segfaults in backward. 16 channels and more, groups > 1 (a
stacked model's members), contiguous inputs, stride 1 and one thread never crashed. A
ResNet's projection shortcut with one member and narrow stage widths is such a
convolution. The training steps run in a subprocess, whose crash shows as a negative
return code instead of killing pytest."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from noisebench.models import layers

# without the guard, every run of these crashed (resnet34 and preact_resnet18 at stage
# widths 4,8,16,32, one member, 32x32 inputs), in the 8 -> 16 projection at 16x16
STEPS = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F
    from noisebench.models import build_model

    torch.set_num_threads(2)  # the crash needs threads; one core is lent them too
    torch.manual_seed(0)
    for name in ("resnet34", "preact_resnet18"):
        model = build_model(
            name, input_shape=(3, 32, 32), hidden=(4, 8, 16, 32), num_classes=10,
            seeds=[0],
        )
        for batch in (7, 13, 57):
            x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
            for _ in range(2):
                model.zero_grad()
                F.cross_entropy(model(x)[0], y).backward()
    """
)


def test_narrow_resnets_train_on_the_cpu_without_a_native_crash():
    done = subprocess.run(
        [sys.executable, "-c", STEPS],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # a signal shows as -signum: -6 (abort), -11 (segfault)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize(("channels", "stride"), [(4, 2), (8, 2), (12, 3), (16, 2)])
def test_the_guarded_convolution_computes_the_plain_one(channels, stride):
    """On the guard's path or not, `conv2d` gives torch's strided 1x1 convolution of
    the contiguous input (a path that does not crash): values and both gradients."""
    torch.manual_seed(0)
    x = torch.randn(6, channels, 11, 10).requires_grad_()
    w = torch.randn(1, 2 * channels, channels, 1, 1).requires_grad_()
    out = layers.conv2d(
        x.contiguous(memory_format=torch.channels_last), w, stride=stride
    )
    ref_x, ref_w = x.detach().clone().requires_grad_(), w.detach()[0].requires_grad_()
    ref = F.conv2d(ref_x, ref_w, stride=stride)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(ref)
    out.backward(grad), ref.backward(grad)
    torch.testing.assert_close(x.grad, ref_x.grad)
    torch.testing.assert_close(w.grad[0], ref_w.grad)
