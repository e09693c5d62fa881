// Global average pooling, NIN's replacement for fully connected layers: each class map's spatial
// mean is that class's logit.
//   x: [N, H, W, C]  →  y: [N, C],  y[n, c] = (1 / HW) · Σ_p x[n, p, c]
// Forward: reduceRows over the HW pixels of each image (workgroup tree reduction, split for large
// HW). Backward: dx[n, p, c] = dy[n, c] / HW, a broadcast over the pixels.
import { record } from '../engine/autograd.ts';
import { dispatch } from '../engine/runtime.ts';
import { Tensor, expectRank, expectShape } from '../engine/tensor.ts';
import { elementwiseGrid, elementwiseKernel } from './elementwise.ts';
import { reduceRows } from './reduce.ts';

export function globalAvgPool(x: Tensor): Tensor {
  const op = 'globalAvgPool';
  expectRank(op, 'input', x, 4, 'NHWC');
  const [N, H, W, C] = x.shape;
  const y = reduceRows(x, { name: 'gap_forward', batch: N, rows: H * W, channels: C, scale: 1 / (H * W) });
  return record(op, y, [x], (dy) => [globalAvgPoolBackward(dy, x.shape)]);
}

export function globalAvgPoolBackward(dy: Tensor, xShape: readonly number[]): Tensor {
  const [N, H, W, C] = xShape;
  expectShape('globalAvgPoolBackward', 'upstream gradient', dy, [N, C]);
  const dx = Tensor.empty(xShape);
  const k = elementwiseKernel(
    'gap_backward',
    dx.size,
    `const C: u32 = ${C}u;
const HW: u32 = ${H * W}u;
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;`,
    'dx[i] = dy[(i / (HW * C)) * C + i % C] / f32(HW);',
  );
  dispatch(k, [dy, dx], elementwiseGrid(dx.size));
  return dx;
}
