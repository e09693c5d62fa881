// Sum over the middle axis: x viewed as [B, R, C] → y[B, C] = scale · Σ_r x[b, r, c].
// Serves global average pooling (R = H·W pixels per image), bias gradients (R = all pixels), the
// loss's batch mean and dot(); each use names its kernel, so a profile tells them apart.
//
// A workgroup of 32 channels × 8 row lanes: lane l sums rows l, l+8, … (consecutive threads read
// consecutive channels, so loads coalesce in NHWC), then the 8 partial sums meet in a workgroup
// tree reduction. The (channel tile, batch) workgroups are one linear index, folded over x and y
// past the device's per-dimension limit (a batch of 65,536 images). Long reductions are split
// over the grid's z dimension and finished by a second pass over the partial sums.
import { dispatch, grid1d, LINEAR_WORKGROUP, type BufferRef } from '../engine/runtime.ts';
import { gpu } from '../engine/device.ts';
import { Tensor } from '../engine/tensor.ts';
import { f32 } from './elementwise.ts';

const CW = 32; // channels per workgroup
const RL = 8; // row lanes per workgroup
const ROWS_PER_SPLIT = 1024;

function reduceKernel(name: string, B: number, R: number, C: number, RC: number, scale: number) {
  const CT = Math.ceil(C / CW); // channel tiles
  return {
    name,
    code: /* wgsl */ `
const B: u32 = ${B}u;
const R: u32 = ${R}u;
const C: u32 = ${C}u;
const RC: u32 = ${RC}u; // rows per split
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>; // [S, B, C]
var<workgroup> partial: array<f32, ${CW * RL}>;

@compute @workgroup_size(${CW}, ${RL})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let group = ${LINEAR_WORKGROUP};
  if (group >= ${CT * B}u) { return; } // past the last tile of a folded grid: the whole workgroup
  let c = (group % ${CT}u) * ${CW}u + lid.x;
  let b = group / ${CT}u;
  let split = wid.z;
  let rEnd = min(R, (split + 1u) * RC);
  var s = 0.0;
  if (c < C) {
    for (var r = split * RC + lid.y; r < rEnd; r += ${RL}u) {
      s += x[(b * R + r) * C + c];
    }
  }
  partial[lid.y * ${CW}u + lid.x] = s;
  workgroupBarrier();
  for (var stride = ${RL / 2}u; stride > 0u; stride = stride / 2u) {
    if (lid.y < stride) {
      partial[lid.y * ${CW}u + lid.x] += partial[(lid.y + stride) * ${CW}u + lid.x];
    }
    workgroupBarrier();
  }
  if (lid.y == 0u && c < C) {
    y[(split * B + b) * C + c] = partial[lid.x] * ${f32(scale)};
  }
}`,
  };
}

export interface RowSum {
  /** The kernel's name in profiles: what the sum is for (gap_forward, bias_grad, …). */
  name: string;
  /** x holds batch · rows · channels floats. */
  batch: number;
  rows: number;
  channels: number;
  /** Multiplies the sums (default 1). */
  scale?: number;
  /** Shape of the result (default [batch, channels]). */
  outShape?: readonly number[];
}

/** y[b, c] = scale · Σ_r x[b, r, c] for x viewed as [batch, rows, channels] (NHWC: r runs over pixels). */
export function reduceRows(x: BufferRef, r: RowSum): Tensor {
  const { name, batch: B, rows: R, channels: C, scale = 1, outShape = [B, C] } = r;
  if (B * R * C * 4 > x.byteLength) throw new RangeError(`reduceRows (${name}): [${B}, ${R}, ${C}] exceeds the input's ${x.byteLength / 4} elements`);
  const maxDim = gpu().limits.maxComputeWorkgroupsPerDimension;
  const S = Math.min(maxDim, Math.max(1, Math.ceil(R / ROWS_PER_SPLIT)));
  const [gx, gy] = grid1d(Math.ceil(C / CW) * B);
  const RC = Math.ceil(R / S);
  if (S === 1) {
    const y = Tensor.empty(outShape);
    dispatch(reduceKernel(name, B, R, C, RC, scale), [x, y], [gx, gy, 1]);
    return y;
  }
  const partial = Tensor.empty([S, B, C]);
  dispatch(reduceKernel(name, B, R, C, RC, 1), [x, partial], [gx, gy, S]);
  const y = reduceRows(partial, { name, batch: 1, rows: S, channels: B * C, scale, outShape });
  partial.dispose();
  return y;
}
