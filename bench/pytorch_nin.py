"""PyTorch + cuDNN side of the issue-4 comparison: the same NIN CIFAR-10 network as nin/model.ts,
timed on the same card in the same device call as our bench (bench/gpu-check.sh runs both).

    python3 bench/pytorch_nin.py --batch 128 --reps 50 [--steps 10] [--json out.json]

Reports medians (CUDA events, one per repetition) of: the full training step (forward, backward,
SGD with momentum and weight decay; biases at 2× the rate and without decay, as ours) in fp32 and
with TF32 tensor cores, the forward pass, and the forward of mlpconv blocks 1, 2 and 3 (conv K×K +
ReLU + 1×1 + ReLU + 1×1 + ReLU). Also the training step and forward back to back, as a training
loop runs them (`*_back_to_back_ms`: wall time of `reps` steps, each step's loss read one step
late, / reps), which is how bench/train-step.ts times ours (pipelinedStepMs): the like-for-like
comparison, since a CUDA event pair does not see host time that ours would include; --steps sets
their count, which should be our bench's --steps (the pipeline's fill and drain weigh 1/steps).
The blocks are also timed `reps` calls between one pair of events (`block*_back_to_back_ms`): per
call that is the GPU time without the launch gaps of a lone call, to set beside our fused kernel's
timestamp time.
The training step and forward are timed again with the net and input in channels_last (NHWC, the
layout our engine uses; cuDNN's tensor-core kernels often prefer it): `*_channels_last` keys, so our
step is set beside PyTorch's faster layout too, not only its default.
Smoke test without a GPU: --device cpu --batch 2 --reps 2.
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.nn as nn


def mlpconv(cin, c1, c2, c3, k, last_relu=True):
    return [nn.Conv2d(cin, c1, k, padding=k // 2), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c3, 1)] + ([nn.ReLU(inplace=True)] if last_relu else [])


def nin_cifar10(classes=10, class_maps_relu=True):
    # The authors' Caffe layout, as nin/model.ts cifarLike(): max pool, then average pool, both
    # 3/2 with Caffe's ceil rounding (32 -> 16 -> 8), dropout 0.5, global average pooling.
    return nn.Sequential(
        *mlpconv(3, 192, 160, 96, 5), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Dropout(0.5),
        *mlpconv(96, 192, 192, 192, 5), nn.AvgPool2d(3, 2, ceil_mode=True), nn.Dropout(0.5),
        *mlpconv(192, 192, 192, classes, 3, class_maps_relu), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def time_ms(fn, reps, warmup=10):
    for _ in range(warmup):
        fn()
    if not torch.cuda.is_available():  # smoke test on a CPU: wall clock
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def back_to_back_ms(fn, reps, warmup=10):
    """Wall ms a call, `reps` calls in a row; fn returns a scalar tensor (or None) read one call late."""
    for _ in range(warmup):
        fn()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t0 = time.perf_counter()
    prev = None
    for _ in range(reps):
        out = fn()
        if prev is not None:
            prev.item()
        prev = out
    if prev is not None:
        prev.item()
    sync()
    return (time.perf_counter() - t0) * 1000 / reps


def events_back_to_back_ms(fn, reps, warmup=10):
    """GPU ms a call, `reps` calls between one pair of CUDA events (wall clock on a CPU)."""
    for _ in range(warmup):
        fn()
    if not torch.cuda.is_available():
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) * 1000 / reps
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps


def set_tf32(on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--reps', type=int, default=50)
    ap.add_argument('--steps', type=int, default=10, help='steps (and forwards) back to back: as our bench --steps')
    ap.add_argument('--json')
    ap.add_argument('--device', default='cuda', help="'cpu' for a smoke test of this script")
    args = ap.parse_args()
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: this PyTorch ({torch.__version__}) sees no CUDA device; --device cpu runs a smoke test of this script")
    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1)
    B = args.batch
    net = nin_cifar10().to(dev)
    biases = [p for p in net.parameters() if p.dim() == 1]
    weights = [p for p in net.parameters() if p.dim() != 1]
    opt = torch.optim.SGD([{'params': weights}, {'params': biases, 'lr': 2e-3, 'weight_decay': 0}], lr=1e-3, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(B, 3, 32, 32, device=dev)
    y = torch.arange(B, device=dev) % 10
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    def forward():
        with torch.no_grad():
            net(x)

    block1 = nn.Sequential(*mlpconv(3, 192, 160, 96, 5)).to(dev).eval()
    block2 = nn.Sequential(*mlpconv(96, 192, 192, 192, 5)).to(dev).eval()
    block3 = nn.Sequential(*mlpconv(192, 192, 192, 10, 3)).to(dev).eval()
    x2 = torch.randn(B, 96, 16, 16, device=dev)
    x3 = torch.randn(B, 192, 8, 8, device=dev)

    def run_block(block, inp):
        def f():
            with torch.no_grad():
                block(inp)
        return f

    results = {'device': torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'cpu', 'torch': torch.__version__,
               'cudnn': torch.backends.cudnn.version(), 'batch': B, 'reps': args.reps, 'steps': args.steps}
    def time_net(layout='', blocks=True):
        """The step and forward in fp32 and TF32, keys suffixed `layout`; the mlpconv blocks too."""
        for label, tf32 in (('fp32', False), ('tf32', True)):
            set_tf32(tf32)
            net.train()
            results[f'train_step_ms_{label}{layout}'] = time_ms(step, args.reps)
            results[f'train_step_back_to_back_ms_{label}{layout}'] = back_to_back_ms(step, args.steps)
            net.eval()
            results[f'forward_ms_{label}{layout}'] = time_ms(forward, args.reps)
            results[f'forward_back_to_back_ms_{label}{layout}'] = back_to_back_ms(forward, args.steps)
            if not blocks:
                continue
            for b, (block, inp) in enumerate(((block1, x), (block2, x2), (block3, x3)), 1):
                results[f'block{b}_forward_ms_{label}'] = time_ms(run_block(block, inp), args.reps)
                results[f'block{b}_back_to_back_ms_{label}'] = events_back_to_back_ms(run_block(block, inp), args.reps)

    time_net()
    save(results, args.json)  # the default-layout numbers survive a cut in the channels_last part
    # The same net and input in channels_last: the parameters are converted in place, so the
    # optimiser (which holds the same Parameter objects) steps them as before.
    net.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    time_net('_channels_last', blocks=False)
    set_tf32(False)
    print(json.dumps(results, indent=2))
    save(results, args.json)


def save(results, path):
    if path:
        with open(path + '.tmp', 'w') as f:
            json.dump(results, f, indent=2)
        os.replace(path + '.tmp', path)


if __name__ == '__main__':
    main()
