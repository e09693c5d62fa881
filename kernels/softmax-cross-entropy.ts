// Softmax cross-entropy loss, mean over the batch, and softmax for prediction.
//   logits: [N, C] (f32)   labels: [N] (i32, in [0, C))   loss: [1]
//   loss = (1/N) Σ_n [ m_n + log Σ_c exp(z[n, c] − m_n) − z[n, label_n] ],  m_n = max_c z[n, c]
// Subtracting the row maximum keeps every exp() ≤ 1, so large logits neither overflow nor lose
// the small terms. Backward: dz = (softmax(z) − onehot(label)) · dloss / N, recomputed elementwise
// from the saved row statistics (m_n, Σ exp) rather than a stored softmax matrix.
//
// Row statistics: one 64-thread workgroup per row; threads stride over the classes, then a
// workgroup tree reduction (max, then sum) — C is 10 for CIFAR but 1000 for ImageNet.
//
// Labels are validated on the CPU by `labelTensor` (which remembers the class count it checked);
// on the GPU an out-of-range label yields a NaN loss for its row instead of reading another row,
// and NaN gradients for that row.
import { expectKeptForBackward, needsGrad, record } from '../engine/autograd.ts';
import { dispatch, grid1d, LINEAR_WORKGROUP } from '../engine/runtime.ts';
import { Tensor, expectRank, expectShape } from '../engine/tensor.ts';
import { elementwiseGrid, elementwiseKernel } from './elementwise.ts';
import { reduceRows } from './reduce.ts';

const WG = 64;

/** Class counts that `labelTensor` validated each label tensor against. */
const checkedClasses = new WeakMap<Tensor, number>();

/** Builds the int32 label tensor [N], checking every label is an integer in [0, numClasses). */
export function labelTensor(labels: ArrayLike<number>, numClasses: number): Tensor {
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`labelTensor: numClasses ${numClasses} must be a positive integer`);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!Number.isInteger(l) || l < 0 || l >= numClasses) {
      throw new RangeError(`labelTensor: label ${l} at index ${i} is not an integer in [0, ${numClasses})`);
    }
  }
  const t = Tensor.fromArray(labels, [labels.length], 'i32');
  checkedClasses.set(t, numClasses);
  return t;
}

/** Per-row max and Σ exp(z − max) into stats [N, 2]; with labels, also each row's loss into rowLoss [N]. */
function rowStatsKernel(N: number, C: number, withLoss: boolean) {
  return {
    name: withLoss ? 'softmax_xent_rows' : 'softmax_rows',
    code: /* wgsl */ `
const NR: u32 = ${N}u;
const C: u32 = ${C}u;
@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
${withLoss ? `@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;
var<private> NAN_BITS: u32 = 0x7fc00000u; // a runtime value: a constant NaN is a compile error` : ''}
var<workgroup> red: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = ${LINEAR_WORKGROUP};
  if (row >= NR) { return; } // uniform per workgroup, so the barriers below stay uniform
  let base = row * C;
  var m = z[base];
  for (var c = lid; c < C; c += ${WG}u) { m = max(m, z[base + c]); }
  red[lid] = m;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier(); // everyone has read the max before red is reused
  var e = 0.0;
  for (var c = lid; c < C; c += ${WG}u) { e += exp(z[base + c] - mx); }
  red[lid] = e;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let sum = red[0];
    stats[2u * row] = mx;
    stats[2u * row + 1u] = sum;
    ${withLoss ? `let lab = labels[row];
    if (lab >= 0 && u32(lab) < C) {
      rowLoss[row] = (mx - z[base + u32(lab)]) + log(sum);
    } else {
      rowLoss[row] = bitcast<f32>(NAN_BITS);
    }` : ''}
  }
}`,
  };
}

function checkLogits(op: string, logits: Tensor): [number, number] {
  expectRank(op, 'logits', logits, 2, 'N×C'); // f32
  return [logits.shape[0], logits.shape[1]];
}

/** Mean softmax cross-entropy of logits [N, C] against int32 labels [N] (see labelTensor); a scalar [1]. */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const op = 'softmaxCrossEntropy';
  const [N, C] = checkLogits(op, logits);
  expectShape(op, 'labels', labels, [N], null); // dtype checked below, pointing to labelTensor
  if (labels.dtype !== 'i32') throw new RangeError(`${op}: labels must be an i32 tensor (see labelTensor), got ${labels.dtype}`);
  const checked = checkedClasses.get(labels);
  if (checked !== undefined && checked > C) {
    throw new RangeError(`${op}: labels were checked against ${checked} classes but logits have shape [${N}, ${C}]`);
  }
  const stats = Tensor.empty([N, 2]);
  const rowLoss = Tensor.empty([N]);
  dispatch(rowStatsKernel(N, C, true), [logits, stats, labels, rowLoss], grid1d(N));
  const loss = reduceRows(rowLoss, { name: 'loss_mean', batch: 1, rows: N, channels: 1, scale: 1 / N, outShape: [1] });
  rowLoss.dispose();
  return record(op, loss, [logits], (g) => {
    expectKeptForBackward(op, 'labels', labels); // no parent, not saved: the caller owns them
    return [softmaxCrossEntropyBackward(logits, labels, stats, g)];
  }, [stats]);
}

/** dz[n, c] = (exp(z[n, c] − m_n) / s_n − [c = label_n]) · g / N, with m_n and s_n = Σ_c exp(z[n, c] − m_n) from stats. */
function softmaxCrossEntropyBackward(logits: Tensor, labels: Tensor, stats: Tensor, g: Tensor): Tensor {
  const [N, C] = logits.shape;
  expectShape('softmaxCrossEntropyBackward', 'upstream gradient', g, [1]);
  const dz = Tensor.empty([N, C]);
  const k = elementwiseKernel(
    'softmax_xent_backward',
    dz.size,
    `const C: u32 = ${C}u;
const NR: f32 = ${N}.0;
@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
var<private> NAN_BITS: u32 = 0x7fc00000u; // a runtime value: a constant NaN is a compile error`,
    `let n = i / C;
  let p = exp(z[i] - stats[2u * n]) / stats[2u * n + 1u];
  let lab = labels[n];
  let t = select(0.0, 1.0, lab == i32(i % C));
  // A row whose label is out of range (one that bypassed labelTensor) gets NaN, as its loss does:
  // a finite gradient, as if no class were the true one, would train on silently.
  dz[i] = select(bitcast<f32>(NAN_BITS), (p - t) * (g[0] / NR), lab >= 0 && u32(lab) < C);`,
  );
  dispatch(k, [logits, stats, labels, g, dz], elementwiseGrid(dz.size));
  return dz;
}

/** Row-wise softmax of logits [N, C] (prediction; not differentiable: refused where a gradient would flow through it). */
export function softmax(logits: Tensor): Tensor {
  const [N, C] = checkLogits('softmax', logits);
  // Its output would pass for a constant, and the gradient stop there without a word.
  if (needsGrad(logits)) throw new Error('softmax: the logits need a gradient, and softmax has no backward: call it under noGrad() (for predictions), or use softmaxCrossEntropy for a loss');
  const stats = Tensor.empty([N, 2]);
  dispatch(rowStatsKernel(N, C, false), [logits, stats], grid1d(N));
  const y = Tensor.empty([N, C]);
  const k = elementwiseKernel(
    'softmax_normalise',
    y.size,
    `const C: u32 = ${C}u;
@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;`,
    `let n = i / C;
  y[i] = exp(z[i] - stats[2u * n]) / stats[2u * n + 1u];`,
  );
  dispatch(k, [logits, stats, y], elementwiseGrid(y.size));
  stats.dispose();
  return y;
}
