// Preprocessing statistics: the eigen-solver against a Jacobi reference, the Gram accumulator, ZCA
// whitening properties against float64 references, GCN against pylearn2's formula, per-channel
// standardisation, and (de)serialisation of the statistics.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { closeGpu } from '../engine/device.ts';
import {
  GramAccumulator,
  MAXOUT_GCN,
  NIN_GCN,
  applyZca,
  computeChannelStats,
  fitZca,
  fitZcaParallel,
  gaussianTaps,
  globalContrastNormalize,
  localContrastNormalize,
  readCifar10,
  standardizeChannels,
  statsFromTensors,
  statsToTensors,
  symmetricEigen,
  type ZcaStats,
} from '../nin/data/index.ts';
import { parallelGram, parallelLocalContrastNormalize, parallelSymmetricEigen } from '../nin/data/parallel.ts';
import type { ImageDataset } from '../nin/data/formats.ts';
import { pool } from '../engine/runtime.ts';
import { faintChannels, fitPreprocessor, flatImages, Preprocessor, PREPROCESS_KINDS, whitenOnGpu, type PreprocessKind } from '../nin/preprocessing.ts';
import { EMULATED_MATRIX, forceMatrixMode } from '../kernels/gemm-matrix.ts';
import { decodeSafetensors, encodeSafetensors } from '../nin/safetensors.ts';
import { randomArray, relErrNorm } from './helpers.ts';

// ---------------------------------------------------------------------------------------------
// Independent float64 references.

/** Cyclic Jacobi eigenvalue algorithm; returns ascending values and matching column vectors. */
function jacobiEigen(A: Float64Array, n: number): { values: number[]; vectors: number[][] } {
  const a = Array.from({ length: n }, (_, i) => Array.from(A.subarray(i * n, (i + 1) * n)));
  const v: number[][] = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) (i === j ? (total += a[i][j] ** 2) : (off += a[i][j] ** 2));
    if (off <= 1e-30 * (total + off)) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (a[p][q] === 0) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k][p];
          const akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p][k];
          const aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k][p];
          const vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[x][x] - a[y][y]);
  return { values: order.map((i) => a[i][i]), vectors: order.map((i) => v.map((row) => row[i])) };
}

function randomSymmetric(n: number, seed: number): Float64Array {
  const r = randomArray(n * n, seed);
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) A[i * n + j] = A[j * n + i] = r[i * n + j];
  return A;
}

/** Correlated data: rows z·M with z uniform, so the covariance is far from diagonal. */
function correlatedData(count: number, dim: number, seed: number): Float32Array {
  const z = randomArray(count * dim, seed);
  const M = randomArray(dim * dim, seed + 1);
  const out = new Float32Array(count * dim);
  for (let s = 0; s < count; s++) {
    for (let j = 0; j < dim; j++) {
      let acc = 3 * (j % 5); // non-zero mean per feature
      for (let k = 0; k < dim; k++) acc += z[s * dim + k] * M[k * dim + j];
      out[s * dim + j] = acc;
    }
  }
  return out;
}

function meanAndCovariance(x: ArrayLike<number>, count: number, dim: number): { mean: Float64Array; cov: Float64Array } {
  const mean = new Float64Array(dim);
  for (let s = 0; s < count; s++) for (let j = 0; j < dim; j++) mean[j] += x[s * dim + j] / count;
  const cov = new Float64Array(dim * dim);
  for (let s = 0; s < count; s++) {
    for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) cov[i * dim + j] += ((x[s * dim + i] - mean[i]) * (x[s * dim + j] - mean[j])) / count;
  }
  return { mean, cov };
}

/** Σ_k f(λ_k) v_k v_kᵀ from Jacobi's decomposition. */
function spectralFunction(eig: { values: number[]; vectors: number[][] }, f: (l: number) => number): Float64Array {
  const n = eig.values.length;
  const out = new Float64Array(n * n);
  eig.values.forEach((l, k) => {
    const v = eig.vectors[k];
    const fl = f(l);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] += fl * v[i] * v[j];
  });
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function identity(n: number): Float64Array {
  const I = new Float64Array(n * n);
  for (let i = 0; i < n; i++) I[i * n + i] = 1;
  return I;
}

/** How far an eigendecomposition is from A = VᵀΛV (max |entry| of the difference) and V from orthonormal. */
function eigenErrors(A: ArrayLike<number>, values: ArrayLike<number>, vectors: ArrayLike<number>, n: number): { reconstruction: number; orthogonality: number } {
  const recon = new Float64Array(n * n);
  const gram = new Float64Array(n * n);
  for (let k = 0; k < n; k++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    recon[i * n + j] += values[k] * vectors[k * n + i] * vectors[k * n + j];
    gram[i * n + j] += vectors[i * n + k] * vectors[j * n + k];
  }
  return { reconstruction: maxAbsDiff(recon, A), orthogonality: maxAbsDiff(gram, identity(n)) };
}

// ---------------------------------------------------------------------------------------------

describe('symmetricEigen (Householder + implicit QL)', () => {
  for (const n of [12, 40]) {
    it(`matches a Jacobi reference on a random ${n}×${n} matrix`, () => {
      const A = randomSymmetric(n, 100 + n);
      const ref = jacobiEigen(A, n);
      const { values, vectors } = symmetricEigen(A, n);
      expect(maxAbsDiff(values, ref.values)).toBeLessThan(1e-12);
      for (let k = 0; k < n; k++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += vectors[k * n + i] * ref.vectors[k][i];
        expect(Math.abs(Math.abs(dot) - 1)).toBeLessThan(1e-10); // same vector up to sign
      }
    });
  }

  it('degenerate spectra, diagonal, zero and 1×1 matrices: A = VᵀΛV with orthonormal V', () => {
    const n = 9;
    // Q·diag(1,1,1,2,2,5,5,5,0)·Qᵀ with Q orthonormal (from a random matrix's eigenvectors).
    const Q = symmetricEigen(randomSymmetric(n, 7), n).vectors;
    const lambda = [1, 1, 1, 2, 2, 5, 5, 5, 0];
    const degenerate = new Float64Array(n * n);
    for (let k = 0; k < n; k++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) degenerate[i * n + j] += lambda[k] * Q[k * n + i] * Q[k * n + j];
    const diagonal = new Float64Array(n * n);
    for (let i = 0; i < n; i++) diagonal[i * n + i] = (i * 7) % 5;
    for (const [name, A, dim] of [
      ['degenerate', degenerate, n],
      ['diagonal', diagonal, n],
      ['zero', new Float64Array(16), 4],
      ['1×1', Float64Array.of(-3), 1],
    ] as const) {
      const { values, vectors } = symmetricEigen(A, dim);
      for (let k = 1; k < dim; k++) expect(values[k], name).toBeGreaterThanOrEqual(values[k - 1]);
      const { reconstruction, orthogonality } = eigenErrors(A, values, vectors, dim);
      expect(reconstruction, name).toBeLessThan(1e-12);
      expect(orthogonality, name).toBeLessThan(1e-12);
    }
    expect(Array.from(symmetricEigen(degenerate, n).values).map((v) => Math.round(v * 1e9) / 1e9)).toEqual([0, 1, 1, 1, 2, 2, 5, 5, 5]);
  });

  it('the worker-thread version agrees (random, degenerate and diagonal matrices; odd and even n)', async () => {
    for (const [n, seed] of [[40, 1], [67, 2]]) {
      const A = randomSymmetric(n, seed);
      const ref = symmetricEigen(A, n);
      const par = await parallelSymmetricEigen(A, n, 3);
      expect(maxAbsDiff(par.values, ref.values)).toBeLessThan(1e-13);
      for (let k = 0; k < n; k++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += par.vectors[k * n + i] * ref.vectors[k * n + i];
        expect(Math.abs(Math.abs(dot) - 1)).toBeLessThan(1e-10);
      }
    }
    // Repeated eigenvalues: vectors are not unique, so check A = VᵀΛV and orthonormality.
    const n = 33;
    const Q = symmetricEigen(randomSymmetric(n, 8), n).vectors;
    const A = new Float64Array(n * n);
    for (let k = 0; k < n; k++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A[i * n + j] += (k % 3) * Q[k * n + i] * Q[k * n + j];
    const { values, vectors } = await parallelSymmetricEigen(A, n, 2);
    const { reconstruction, orthogonality } = eigenErrors(A, values, vectors, n);
    expect(reconstruction).toBeLessThan(1e-12);
    expect(orthogonality).toBeLessThan(1e-12);
    const diag = new Float64Array(25);
    for (let i = 0; i < 5; i++) diag[i * 5 + i] = 5 - i;
    expect(Array.from((await parallelSymmetricEigen(diag, 5, 2)).values)).toEqual([1, 2, 3, 4, 5]);
    // A matrix already in shared memory is read, not reduced in place: the caller's stays as it was.
    const inShared = new Float64Array(new SharedArrayBuffer(40 * 40 * 8));
    inShared.set(randomSymmetric(40, 1));
    const kept = inShared.slice();
    await parallelSymmetricEigen(inShared, 40, 2);
    expect(maxAbsDiff(inShared, kept)).toBe(0);
  });

  it('rejects non-square input and non-finite entries', () => {
    expect(() => symmetricEigen(new Float64Array(5), 2)).toThrow(/expected an 2×2 matrix \(4 values\), got 5/);
    expect(() => symmetricEigen(Float64Array.of(1, NaN, NaN, 1), 2)).toThrow(/entry \(0, 1\) is NaN/);
    expect(() => symmetricEigen(Float64Array.of(1, 0, 0, -Infinity), 2)).toThrow('symmetricEigen: entry (1, 1) is -Infinity');
  });

  it('decomposes a 256×256 matrix to rounding level (A = VᵀΛV, orthonormal V), timed', () => {
    const n = 256;
    const A = randomSymmetric(n, 3);
    const t = performance.now();
    const { values, vectors } = symmetricEigen(A, n);
    console.log(`symmetricEigen ${n}×${n}: ${(performance.now() - t).toFixed(0)} ms`);
    const { reconstruction, orthogonality } = eigenErrors(A, values, vectors, n);
    console.log(`  A = VᵀΛV to ${reconstruction.toExponential(1)}, V orthonormal to ${orthogonality.toExponential(1)}`);
    expect(reconstruction).toBeLessThan(1e-12);
    expect(orthogonality).toBeLessThan(1e-12);
  });
});

describe('GramAccumulator', () => {
  it('matches a naive Σ(x−μ)(x−μ)ᵀ for an odd dimension and rows added in uneven pieces', () => {
    const dim = 13;
    const count = 150; // crosses the 64-row chunk boundary twice, with a remainder
    const x = randomArray(count * dim, 5, -3, 3);
    const offset = Float64Array.from(randomArray(dim, 6));
    const g = new GramAccumulator(dim);
    g.add(x.subarray(0, 10 * dim), 10, offset);
    g.add(x.subarray(10 * dim, 100 * dim), 90, offset);
    g.add(x.subarray(100 * dim), 50, offset);
    expect(g.count).toBe(150);
    const ref = new Float64Array(dim * dim);
    for (let s = 0; s < count; s++) for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) ref[i * dim + j] += (x[s * dim + i] - offset[i]) * (x[s * dim + j] - offset[j]);
    expect(maxAbsDiff(g.result(), ref)).toBeLessThan(1e-11);
  });

  it('refuses rows it was not given and a partial result of another layout', () => {
    const g = new GramAccumulator(5); // padded to 8
    expect(() => g.add(new Float32Array(14), 3)).toThrow('GramAccumulator.add: 3 rows of 5 need 15 values, got 14');
    expect(() => g.addPartial(new Float64Array(25), 1)).toThrow('GramAccumulator.addPartial: 25 values, expected 64');
    expect(g.count).toBe(0);
  });

  it('on worker threads (parallelGram): the same sums and row count, rows split over workers; rows it was not given are refused', async () => {
    const dim = 13;
    const count = 150; // two workers of 75 rows, each crossing a 64-row chunk
    const x = randomArray(count * dim, 5, -3, 3);
    const offset = Float64Array.from(randomArray(dim, 6));
    const one = new GramAccumulator(dim);
    one.add(x, count, offset);
    const par = await parallelGram(x, count, dim, offset, 2);
    expect(par.count).toBe(count);
    expect(maxAbsDiff(par.result(), one.result())).toBeLessThan(1e-11);
    await expect(parallelGram(x.subarray(0, count * dim - 1), count, dim, offset, 2)).rejects.toThrow('parallelGram: 150 rows of 13 need 1950 values, got 1949');
  });
});

describe('ZCA whitening', () => {
  const count = 50;
  const dim = 12;
  const x = correlatedData(count, dim, 11);
  const { mean, cov } = meanAndCovariance(x, count, dim);
  const ref = jacobiEigen(cov, dim);

  it('mean, eigenvalues and W = U·diag(1/sqrt(λ+ε))·Uᵀ match a Jacobi float64 reference; W is symmetric', () => {
    const eps = 0.1;
    const zca = fitZca(x, dim, { epsilon: eps });
    expect(zca.count).toBe(count);
    expect(maxAbsDiff(zca.mean, mean)).toBeLessThan(1e-12);
    expect(maxAbsDiff(zca.eigenvalues, [...ref.values].reverse())).toBeLessThan(1e-10);
    const Wref = spectralFunction(ref, (l) => 1 / Math.sqrt(l + eps));
    const rel = maxAbsDiff(zca.whitening, Wref) / Math.max(...Array.from(Wref, Math.abs));
    console.log(`ZCA W vs Jacobi reference: max relative difference ${rel.toExponential(2)}`);
    expect(rel).toBeLessThan(1e-10);
    for (let i = 0; i < dim; i++) for (let j = 0; j < i; j++) expect(zca.whitening[i * dim + j]).toBe(zca.whitening[j * dim + i]);
  });

  it('whitened training data has identity covariance (ε → 0), and U·diag(λ/(λ+ε))·Uᵀ for ε > 0', () => {
    const tight = fitZca(x, dim, { epsilon: 1e-9 });
    // Float64 check through W itself.
    const y64 = new Float64Array(count * dim);
    for (let s = 0; s < count; s++) {
      for (let j = 0; j < dim; j++) {
        let acc = 0;
        for (let k = 0; k < dim; k++) acc += (x[s * dim + k] - tight.mean[k]) * tight.whitening[k * dim + j];
        y64[s * dim + j] = acc;
      }
    }
    expect(maxAbsDiff(meanAndCovariance(y64, count, dim).cov, identity(dim))).toBeLessThan(1e-6);
    // The float32 transform gets there to float32 precision.
    const y32 = applyZca(tight, x);
    expect(maxAbsDiff(meanAndCovariance(y32, count, dim).cov, identity(dim))).toBeLessThan(1e-4);

    const eps = 0.5;
    const loose = fitZca(x, dim, { epsilon: eps });
    const expected = spectralFunction(ref, (l) => l / (l + eps));
    expect(maxAbsDiff(meanAndCovariance(applyZca(loose, x), count, dim).cov, expected)).toBeLessThan(1e-4);
  });

  it('rank-deficient data (after GCN): ε = 0 is refused; with small ε the covariance is the projector onto the retained components', () => {
    const g = globalContrastNormalize(correlatedData(count, dim, 21), dim);
    expect(() => fitZca(g, dim, { epsilon: 0 })).toThrow(/not positive definite .* use epsilon > 0/);
    // (ε small against the retained variances, ~250 here, yet large enough that the float32 rounding
    // left in the null direction is not blown up.)
    const zca = fitZca(g, dim, { epsilon: 1e-4 });
    // GCN removes each example's mean, so the all-ones direction has zero variance; every other
    // direction is whitened to unit variance: covariance = I − 11ᵀ/dim.
    const P = identity(dim);
    for (let i = 0; i < dim * dim; i++) P[i] -= 1 / dim;
    const whitenedCov = meanAndCovariance(applyZca(zca, g), count, dim).cov;
    expect(maxAbsDiff(whitenedCov, P)).toBeLessThan(2e-3);
    // Exactly: U·diag(λ/(λ+ε))·Uᵀ, up to float32 rounding.
    const expected = spectralFunction(jacobiEigen(meanAndCovariance(g, count, dim).cov, dim), (l) => Math.max(l, 0) / (Math.max(l, 0) + 1e-4));
    expect(maxAbsDiff(whitenedCov, expected)).toBeLessThan(1e-4);
    expect(Math.abs(zca.eigenvalues[dim - 1])).toBeLessThan(1e-9);
  });

  it('applyZca equals (x − μ)·W in float64 for an odd dimension and a partial block of examples; works in place', () => {
    const d = 13;
    const n = 7;
    const train = correlatedData(40, d, 31);
    const zca = fitZca(train, d, { epsilon: 0.1 });
    const test = correlatedData(n, d, 41);
    const ref = new Float64Array(n * d);
    for (let s = 0; s < n; s++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) ref[s * d + j] += (test[s * d + k] - zca.mean[k]) * zca.whitening[k * d + j];
    const out = applyZca(zca, test);
    expect(maxAbsDiff(out, ref) / Math.max(...Array.from(ref, Math.abs))).toBeLessThan(1e-5);
    const inPlace = test.slice();
    applyZca(zca, inPlace, inPlace);
    expect(inPlace).toEqual(out);
  });

  it('the worker-thread fit gives the same statistics', async () => {
    const big = correlatedData(300, dim, 51);
    const single = fitZca(big, dim, { epsilon: 0.1 });
    const parallel = await fitZcaParallel(big, dim, { epsilon: 0.1, workers: 3 });
    expect(maxAbsDiff(parallel.mean, single.mean)).toBe(0);
    expect(maxAbsDiff(parallel.whitening, single.whitening)).toBeLessThan(1e-12 * Math.max(...Array.from(single.whitening, Math.abs)));
    expect(maxAbsDiff(parallel.eigenvalues, single.eigenvalues)).toBeLessThan(1e-10);
    // Wide enough (≥ 128 features) for the worker-thread eigen-decomposition inside fitZcaParallel.
    const wide = correlatedData(200, 130, 61);
    const w1 = fitZca(wide, 130);
    const w2 = await fitZcaParallel(wide, 130, { workers: 2 });
    expect(maxAbsDiff(w2.whitening, w1.whitening)).toBeLessThan(1e-9 * Math.max(...Array.from(w1.whitening, Math.abs)));
  });

  it("default ε is 0.1 (pylearn2's filter_bias, the paper's preprocessing), in fitZca and in the gcn-zca preprocessor; ε changes W", async () => {
    const g = globalContrastNormalize(correlatedData(count, dim, 21), dim, NIN_GCN);
    const byDefault = fitZca(g, dim);
    expect(byDefault.epsilon).toBe(0.1);
    expect(byDefault.whitening).toEqual(fitZca(g, dim, { epsilon: 0.1 }).whitening);
    // ε is read: 0.01 gives a measurably different W (GCN'd data has a zero-variance direction, scaled by 1/sqrt(ε)).
    const scale = Math.max(...Array.from(byDefault.whitening, Math.abs));
    expect(maxAbsDiff(fitZca(g, dim, { epsilon: 0.01 }).whitening, byDefault.whitening)).toBeGreaterThan(0.1 * scale);
    // fitPreprocessor('gcn-zca') fits GCN'd training images with the same default.
    const train: ImageDataset = { name: 'synthetic', images: correlatedData(count, dim, 21), labels: new Int32Array(count), count, height: 2, width: 2, channels: 3, classNames: ['a'], sources: [], notes: [] };
    const pre = await fitPreprocessor('gcn-zca', train);
    const stats = pre.stats as ZcaStats;
    expect(stats.epsilon).toBe(0.1);
    expect(maxAbsDiff(stats.whitening, byDefault.whitening)).toBeLessThan(1e-10 * scale);
  });

  it('statistics survive a safetensors round trip', () => {
    const zca = fitZca(x, dim);
    const { tensors, metadata } = statsToTensors(zca, 'pre.');
    const back = decodeSafetensors(Buffer.concat(encodeSafetensors(tensors, metadata)));
    const restored = statsFromTensors(back.tensors, back.metadata, 'pre.') as ZcaStats;
    expect(restored).toEqual(zca);
    expect(applyZca(restored, x)).toEqual(applyZca(zca, x));
    // A float32 W (another tool's file) restores to the same float32 transform: applyZca uses float32 W.
    const small = { ...tensors, 'pre.whitening': { dtype: 'F32' as const, shape: [dim, dim], data: Float32Array.from(zca.whitening) } };
    const restored32 = statsFromTensors(small, metadata, 'pre.') as ZcaStats;
    expect(applyZca(restored32, x)).toEqual(applyZca(zca, x));
    // A damaged header: a count that is not plain digits, a whitening matrix of the wrong size.
    for (const count of ['0x10', '1e3', '2.5', ' 7']) {
      expect(() => statsFromTensors(tensors, { ...metadata, 'pre.count': count }, 'pre.')).toThrow(`preprocessing statistics: metadata "pre.count" (the images they were fitted on) must be a whole number ≥ 1, found ${JSON.stringify(count)}`);
    }
    const cut = { ...tensors, 'pre.whitening': { dtype: 'F64' as const, shape: [dim * dim - 1], data: zca.whitening.slice(1) } };
    expect(() => statsFromTensors(cut, metadata, 'pre.')).toThrow(`preprocessing statistics: whitening has ${dim * dim - 1} values, expected ${dim}²`);
    const fewEigenvalues = { ...tensors, 'pre.eigenvalues': { dtype: 'F64' as const, shape: [2], data: zca.eigenvalues.slice(0, 2) } };
    expect(() => statsFromTensors(fewEigenvalues, metadata, 'pre.')).toThrow(`preprocessing statistics: eigenvalues has 2 values, expected ${dim}`);
  });

  it("stored ZCA statistics for more features than the model's input are refused, as for fewer", () => {
    const pre = new Preprocessor('gcn-zca', fitZca(x, dim));
    expect(() => pre.checkInput({ height: 1, width: 2, channels: 3 })).toThrow("preprocessing statistics: ZCA over 12 features, the model's 1×2×3 input has 6");
    expect(() => pre.checkInput({ height: 2, width: 4, channels: 3 })).toThrow("preprocessing statistics: ZCA over 12 features, the model's 2×4×3 input has 24");
    expect(() => pre.checkInput({ height: 2, width: 2, channels: 3 })).not.toThrow();
  });

  it('a negative ε is refused', () => {
    expect(() => fitZca(x, dim, { epsilon: -0.1 })).toThrow('fitZca: epsilon -0.1 must be ≥ 0');
  });
});

describe('global contrast normalisation', () => {
  /** pylearn2.expr.preprocessing.global_contrast_normalize for one row, in float64. */
  function gcnRef(row: ArrayLike<number>, scale: number, sqrtBias: number, useStd: boolean): number[] {
    const n = row.length;
    const m = Array.from(row).reduce((a, b) => a + b, 0) / n;
    const c = Array.from(row, (v) => v - m);
    const ss = c.reduce((a, v) => a + v * v, 0);
    let s = useStd ? Math.sqrt(sqrtBias + ss / (n - 1)) / scale : Math.sqrt(sqrtBias + ss) / scale;
    if (s < 1e-8) s = 1;
    return c.map((v) => v / s);
  }

  it('NIN convention (scale 55, L2 norm, no bias): matches the reference; zero mean, norm 55; independent of pixel scale', () => {
    const n = 5;
    const d = 3072;
    const imgs = randomArray(n * d, 9, 0, 255).map(Math.round);
    const out = globalContrastNormalize(imgs, d, NIN_GCN, new Float32Array(imgs.length));
    for (let i = 0; i < n; i++) {
      const ref = gcnRef(imgs.subarray(i * d, (i + 1) * d), 55, 0, false);
      const row = out.subarray(i * d, (i + 1) * d);
      expect(maxAbsDiff(row, ref)).toBeLessThan(1e-5);
      const norm = Math.sqrt(row.reduce((a, v) => a + v * v, 0));
      expect(norm).toBeCloseTo(55, 3);
      expect(Math.abs(row.reduce((a, v) => a + v, 0) / d)).toBeLessThan(1e-5);
    }
    const unit = globalContrastNormalize(imgs.map((v) => v / 255), d);
    expect(maxAbsDiff(unit, out)).toBeLessThan(1e-4);
  });

  it('std variant with sqrt bias (Coates et al.) and a constant image (divisor guard, no NaN)', () => {
    const d = 48;
    const imgs = randomArray(3 * d, 12, 0, 255);
    imgs.fill(77, 2 * d, 3 * d);
    const out = globalContrastNormalize(imgs.slice(), d, { scale: 1, sqrtBias: 10, useStd: true });
    for (let i = 0; i < 2; i++) expect(maxAbsDiff(out.subarray(i * d, (i + 1) * d), gcnRef(imgs.subarray(i * d, (i + 1) * d), 1, 10, true))).toBeLessThan(1e-5);
    const constant = globalContrastNormalize(imgs.subarray(2 * d).slice(), d);
    expect(Array.from(constant).every((v) => v === 0)).toBe(true);
    expect(() => globalContrastNormalize(new Float32Array(10), 3)).toThrow(/not a whole number of 3-feature images/);
  });
});

describe('local contrast normalisation (LeCun, as pylearn2 lecun_lcn)', () => {
  /**
   * Float64 reference for one NHWC image: the 2-D Gaussian written out (not separated), zero
   * padding, y = (x − G∗x) / max(mean(s), s, threshold) with s = sqrt(G∗x²). Also counts which
   * term of the max won, so a test can show that both branches ran.
   */
  function lcnRef(img: ArrayLike<number>, H: number, W: number, C: number, k = 7, sigma = 2, threshold = 1e-4) {
    const mid = (k - 1) / 2;
    const G = Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => Math.exp(-((i - mid) ** 2 + (j - mid) ** 2) / (2 * sigma * sigma))));
    const Z = G.flat().reduce((a, b) => a + b, 0);
    const at = (r: number, c: number, ch: number) => (r < 0 || r >= H || c < 0 || c >= W ? 0 : img[(r * W + c) * C + ch]);
    const out = new Array<number>(H * W * C);
    const wins = { local: 0, mean: 0 };
    for (let ch = 0; ch < C; ch++) {
      const m: number[] = [];
      const s: number[] = [];
      for (let r = 0; r < H; r++) {
        for (let c = 0; c < W; c++) {
          let sum = 0;
          let sq = 0;
          for (let i = 0; i < k; i++) {
            for (let j = 0; j < k; j++) {
              const v = at(r + i - mid, c + j - mid, ch);
              sum += (G[i][j] / Z) * v;
              sq += (G[i][j] / Z) * v * v;
            }
          }
          m.push(sum);
          s.push(Math.sqrt(sq));
        }
      }
      const meanS = s.reduce((a, b) => a + b, 0) / (H * W);
      for (let p = 0; p < H * W; p++) {
        if (s[p] > meanS) wins.local++;
        else wins.mean++;
        out[p * C + ch] = (img[p * C + ch] - m[p]) / Math.max(meanS, s[p], threshold);
      }
    }
    return { out, wins };
  }

  /** Images with a dark half and a bright half, so the local norm is above its mean in places and below in others. */
  function halves(n: number, H: number, W: number, C: number, seed: number): Float32Array {
    const x = randomArray(n * H * W * C, seed, 0, 1);
    return x.map((v, i) => (Math.floor(i / C) % W < W / 2 ? 10 * v : 200 + 55 * v));
  }

  it.each([
    { H: 5, W: 9, C: 2, k: 7, sigma: 2 }, // the kernel is taller than the image
    { H: 8, W: 8, C: 3, k: 7, sigma: 2 },
    { H: 6, W: 7, C: 1, k: 3, sigma: 1 },
  ])('matches the written-out 2-D float64 reference on $H×$W×$C images, kernel $k, σ $sigma; both terms of the divisor occur', ({ H, W, C, k, sigma }) => {
    const n = 3;
    const per = H * W * C;
    const x = halves(n, H, W, C, H * 100 + W);
    const y = localContrastNormalize(x, { height: H, width: W, channels: C }, { kernelSize: k, sigma }, new Float32Array(x.length));
    const wins = { local: 0, mean: 0 };
    for (let i = 0; i < n; i++) {
      const ref = lcnRef(x.subarray(i * per, (i + 1) * per), H, W, C, k, sigma);
      expect(maxAbsDiff(y.subarray(i * per, (i + 1) * per), ref.out)).toBeLessThan(1e-5);
      wins.local += ref.wins.local;
      wins.mean += ref.wins.mean;
    }
    expect(wins.local).toBeGreaterThan(0);
    expect(wins.mean).toBeGreaterThan(0);
    // In place gives the same.
    expect(maxAbsDiff(localContrastNormalize(x.slice(), { height: H, width: W, channels: C }, { kernelSize: k, sigma }), y)).toBe(0);
  });

  it('on worker threads: the same values, split over images (in place in shared memory, else into a new shared array)', async () => {
    const shape = { height: 5, width: 9, channels: 2 };
    const x = halves(700, 5, 9, 2, 17);
    const one = localContrastNormalize(x, shape, {}, new Float32Array(x.length));
    const copy = await parallelLocalContrastNormalize(x, shape, {}, 3);
    expect(copy.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(maxAbsDiff(copy, one)).toBe(0);
    expect(maxAbsDiff(x, one)).toBeGreaterThan(0); // x itself untouched
    const inPlace = new Float32Array(new SharedArrayBuffer(x.byteLength));
    inPlace.set(x);
    expect(await parallelLocalContrastNormalize(inPlace, shape, {}, 2)).toBe(inPlace);
    expect(maxAbsDiff(inPlace, one)).toBe(0);
    // Fewer images than pay for workers: this thread, the same contract.
    const few = x.slice(0, 10 * 90);
    const fewOut = await parallelLocalContrastNormalize(few, shape, {}, 3);
    expect(fewOut.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(maxAbsDiff(fewOut, one.subarray(0, 10 * 90))).toBe(0);
    expect(maxAbsDiff(few, x.subarray(0, 10 * 90))).toBe(0);
    // Its options are LCN's: another kernel, the same values as this thread's.
    const narrow = { kernelSize: 5, sigma: 1 };
    const narrowOne = localContrastNormalize(x, shape, narrow, new Float32Array(x.length));
    expect(maxAbsDiff(narrowOne, one)).toBeGreaterThan(0);
    expect(maxAbsDiff(await parallelLocalContrastNormalize(x, shape, narrow, 3), narrowOne)).toBe(0);
  });

  it('the Gaussian factor is symmetric and sums to 1; an all-zero image stays 0 (threshold, no NaN); bad shapes and kernels are refused', () => {
    const g = gaussianTaps(7, 2);
    expect(g.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    for (let i = 0; i < 7; i++) expect(g[i]).toBeCloseTo(g[6 - i], 15);
    expect(g[3] / g[1]).toBeCloseTo(Math.exp(4 / 8), 12);
    const zero = localContrastNormalize(new Float32Array(2 * 4 * 4 * 3), { height: 4, width: 4, channels: 3 });
    expect(Array.from(zero).every((v) => v === 0)).toBe(true);
    expect(() => localContrastNormalize(new Float32Array(47), { height: 4, width: 4, channels: 3 })).toThrow(/not a whole number of 4×4×3 images/);
    expect(() => gaussianTaps(6, 2)).toThrow(/odd/);
    expect(() => localContrastNormalize(new Float32Array(48), { height: 4, width: 4, channels: 3 }, {}, new Float32Array(47))).toThrow('localContrastNormalize: 48 values is not a whole number of 4×4×3 images (output 47)');
    // A faint image (values near 1e-5): every local norm and their mean under pylearn2's threshold, 1e-4, which divides.
    const faint = randomArray(5 * 6 * 1, 31, 0, 2e-5);
    const divided = localContrastNormalize(faint, { height: 5, width: 6, channels: 1 }, {}, new Float32Array(faint.length));
    const ref = lcnRef(faint, 5, 6, 1);
    expect(maxAbsDiff(divided, ref.out)).toBeLessThan(1e-6);
    expect(Math.max(...Array.from(divided, Math.abs))).toBeGreaterThan(0.02);
    expect(() => gaussianTaps(7, 0)).toThrow(/σ/);
  });

  it('gcn-lcn preprocessing: GCN (scale 1) then LCN, nothing to fit, independent of pixel scale, survives a checkpoint round trip', async () => {
    const [H, W, C] = [6, 5, 3];
    const per = H * W * C;
    const images = Float32Array.from(halves(4, H, W, C, 5), Math.round);
    const ds: ImageDataset = { name: 'synthetic', images, labels: new Int32Array(4), count: 4, height: H, width: W, channels: C, classNames: ['a'], sources: [], notes: [] };
    const pre = await fitPreprocessor('gcn-lcn', ds);
    expect(pre.stats).toBeNull();
    const y = pre.apply(images, 4, ds);
    for (let i = 0; i < 4; i++) {
      const gcn = globalContrastNormalize(images.slice(i * per, (i + 1) * per), per, MAXOUT_GCN);
      expect(maxAbsDiff(y.subarray(i * per, (i + 1) * per), lcnRef(gcn, H, W, C).out)).toBeLessThan(1e-5);
    }
    expect(maxAbsDiff(pre.apply(images.map((v) => v / 255), 4, ds), y)).toBeLessThan(1e-5);
    expect((await pre.applyTo(ds)).images).toEqual(y);
    const { tensors, metadata } = pre.toTensors();
    const back = Preprocessor.fromTensors(tensors, metadata);
    expect(back.kind).toBe('gcn-lcn');
    expect(back.apply(images, 4, ds)).toEqual(y);
    expect(() => pre.apply(images, 3, ds)).toThrow(/not 3 images of 6×5×3/);
  });
});

describe('per-channel standardisation', () => {
  it('mean/std match a two-pass reference; standardised data has mean 0 and std 1 per channel', () => {
    const C = 3;
    const pixels = 1000;
    const x = randomArray(pixels * C, 4, 0, 255).map((v, i) => v * (1 + (i % C)) + 1000 * (i % C));
    const stats = computeChannelStats(x, C);
    for (let c = 0; c < C; c++) {
      let m = 0;
      for (let p = 0; p < pixels; p++) m += x[p * C + c] / pixels;
      let v = 0;
      for (let p = 0; p < pixels; p++) v += (x[p * C + c] - m) ** 2 / pixels;
      expect(stats.mean[c]).toBeCloseTo(m, 6);
      expect(stats.std[c]).toBeCloseTo(Math.sqrt(v), 6);
    }
    const y = standardizeChannels(x, stats, new Float32Array(x.length));
    const again = computeChannelStats(y, C);
    for (let c = 0; c < C; c++) {
      expect(Math.abs(again.mean[c])).toBeLessThan(1e-4);
      expect(again.std[c]).toBeCloseTo(1, 4);
    }
    const { tensors, metadata } = statsToTensors(stats);
    expect(statsFromTensors(tensors, metadata)).toEqual(stats);
  });

  const SHARED = fileURLToPath(new URL('../../shared/data/cifar-10-batches-bin/', import.meta.url));
  it.skipIf(!existsSync(SHARED))('CIFAR-10 data_batch_1 channel means are near the published full-set values', () => {
    const ds = readCifar10([join(SHARED, 'data_batch_1.bin.gz')]);
    const s = computeChannelStats(ds.images, 3);
    const published = [0.4914, 0.4822, 0.4465];
    for (let c = 0; c < 3; c++) expect(Math.abs(s.mean[c] / 255 - published[c])).toBeLessThan(0.01);
  });
});

describe('Preprocessor (the transform training and eval apply)', () => {
  afterAll(() => closeGpu());

  it('applyTo in place (a consumable dataset): the same values as a copy, in the same buffer; without inPlace the input is left alone', async () => {
    const [h, w, c] = [5, 3, 2];
    const dim = h * w * c;
    const make = (count: number, seed: number, shared: boolean): ImageDataset => {
      const images = shared ? new Float32Array(new SharedArrayBuffer(count * dim * 4)) : new Float32Array(count * dim);
      images.set(Float32Array.from(randomArray(count * dim, seed, 0, 255), Math.round));
      return { name: `synthetic-${seed}`, images, labels: new Int32Array(count), count, height: h, width: w, channels: c, classNames: ['a'], sources: [], notes: [] };
    };
    for (const kind of PREPROCESS_KINDS) {
      const pre = await fitPreprocessor(kind, make(40, 81, false));
      for (const shared of [false, true]) {
        const ds = make(7, 82, shared);
        const raw = new Float32Array(ds.images);
        const copied = await pre.applyTo(ds);
        expect(ds.images, `${kind}: input untouched`).toEqual(raw);
        expect(copied.images.buffer).not.toBe(ds.images.buffer);
        const inPlace = await pre.applyTo(ds, { inPlace: true });
        expect(relErrNorm(inPlace.images, copied.images), kind).toBeLessThan(1e-6);
        // LCN's worker threads need shared memory: a plain array is copied there once.
        const reused = kind !== 'gcn-lcn' || shared;
        expect(inPlace.images === ds.images, `${kind}, ${shared ? 'shared' : 'plain'} array reused`).toBe(reused);
        if (reused) expect(ds.images).not.toEqual(raw);
      }
    }
  });

  it('a streamed set (--stream) takes the per-pixel kinds only, each batch transformed as read after what it had; the whole-set kinds are refused, to fit or to apply', async () => {
    const streamed: ImageDataset = { name: 'pictures/train', images: new Float32Array(0), labels: new Int32Array(2), count: 2, height: 2, width: 2, channels: 3, classNames: ['a'], sources: [], notes: [], stream: { paths: ['a.png', 'b.png'] } };
    for (const kind of ['gcn-zca', 'gcn-lcn'] as const) {
      await expect(new Preprocessor(kind, null).applyTo(streamed)).rejects.toThrow(new RangeError(`pictures/train: preprocessing '${kind}' works on the whole set, not a streamed one (batch by batch: none or standardize)`));
    }
    await expect(fitPreprocessor('gcn-zca', streamed)).rejects.toThrow(new RangeError("pictures/train: preprocessing 'gcn-zca' is fitted on the whole set in memory, not a streamed one (none or standardize)"));
    const before = (images: Float32Array) => void (images[0] = 510);
    const none = await new Preprocessor('none', null).applyTo({ ...streamed, stream: { paths: streamed.stream!.paths, transform: before } });
    expect(none.images).toHaveLength(0);
    const batch = new Float32Array(2 * 2 * 2 * 3).fill(51);
    none.stream!.transform!(batch, 2);
    expect([batch[0], batch[1]]).toEqual([2, Math.fround(0.2)]);
  });

  it('GCN on flat training images (one value throughout) says that it makes them all zeros', async () => {
    const [h, w, c] = [2, 2, 3];
    const make = (values: number[][]): ImageDataset => {
      const images = new Float32Array(values.flatMap((v) => (v.length === 1 ? new Array(h * w * c).fill(v[0]) : v)));
      return { name: 'flat', images, labels: new Int32Array(values.length), count: values.length, height: h, width: w, channels: c, classNames: ['a', 'b'], sources: [], notes: [] };
    };
    const notes = async (kind: PreprocessKind, ds: ImageDataset) => {
      const said: string[] = [];
      await fitPreprocessor(kind, ds, (m) => void said.push(m));
      return said.filter((m) => m.startsWith('note:'));
    };
    const varied = Array.from({ length: h * w * c }, (_, k) => k);
    const some = make([[0], varied, [255], varied.map((v) => 2 * v)]);
    expect(flatImages(some)).toBe(2);
    expect(flatImages(make([[...new Array(h * w * c - 1).fill(9), 10], [10, ...new Array(h * w * c - 1).fill(9)]]))).toBe(0); // one value differs, last or first
    for (const kind of ['gcn-zca', 'gcn-lcn'] as const) {
      expect(await notes(kind, some)).toEqual(["note: 2 of the 4 training images are flat (one value throughout): global contrast normalisation subtracts each image's mean and makes them all zeros (--preprocess standardize keeps their brightness)"]);
    }
    expect(await notes('gcn-lcn', make([[0], [7], [255]]))).toEqual(["note: every one of the 3 training images is flat (one value throughout): global contrast normalisation subtracts each image's mean and makes them all zeros, so the net sees one image for every class (--preprocess standardize keeps their brightness)"]);
    expect(await notes('gcn-zca', make([varied, [3]]))).toEqual(["note: 1 of the 2 training images is flat (one value throughout): global contrast normalisation subtracts each image's mean and makes it all zeros (--preprocess standardize keeps their brightness)"]);
    expect(await notes('standardize', make([[0], [7]]))).toEqual([]); // (it keeps their brightness)
    expect(await notes('gcn-zca', make([varied, varied.map((v) => 255 - v)]))).toEqual([]);
  });

  it('standardize: a channel that varies by less than one level of 0..255 (but varies) is noted', async () => {
    const notes = async (channels: number, images: number[]) => {
      const said: string[] = [];
      const count = images.length / (4 * channels);
      await fitPreprocessor('standardize', { name: 'faint', images: Float32Array.from(images), labels: new Int32Array(count), count, height: 2, width: 2, channels, classNames: ['a', 'b'], sources: [], notes: [] }, (m) => void said.push(m));
      return said;
    };
    // Zero but for one pixel of 1/257 (a 16-bit PNG's 1), over 8 images: std 0.00068.
    const spike = new Array(32).fill(0);
    spike[5] = 1 / 257;
    expect(await notes(1, spike)).toEqual(["note: the training images' one channel varies by std 0.00068 on 0..255: standardising divides by that, so a picture that differs there lands far outside the training values (--preprocess none keeps them as they are)"]);
    // RGB whose green only is faint; a constant channel (std 0, only centred) and ordinary ones are not.
    const rgb = Array.from({ length: 2 * 4 }, (_, p) => [p * 20, p % 2 ? 0.5 : 0, 7]).flat();
    expect(await notes(3, rgb)).toEqual(['note: channel 1 of the training images varies by std 0.25 on 0..255: standardising divides by that, so a picture that differs there lands far outside the training values (--preprocess none keeps them as they are)']);
    expect(await notes(3, Array.from({ length: 2 * 4 }, (_, p) => [p * 20, p * 3, 7]).flat())).toEqual([]);
    // One level exactly is not less than one.
    const std = (...values: number[]) => ({ kind: 'channel' as const, channels: values.length, mean: new Float64Array(values.length), std: Float64Array.from(values), count: 8 });
    expect(faintChannels(std(1, 3))).toBeNull();
    expect(faintChannels(std(0.999, 3))).toMatch(/^channel 0 of the training images varies by std 1\.0 on 0\.\.255: /);
  });

  it('gcn-zca: fitted on the training set, a whole data set is transformed (whitened on the GPU) as image by image on the CPU', async () => {
    const [h, w, c] = [3, 4, 3];
    const dim = h * w * c;
    const make = (count: number, seed: number): ImageDataset => ({
      name: `synthetic-${seed}`,
      images: Float32Array.from(randomArray(count * dim, seed, 0, 255), Math.round),
      labels: new Int32Array(count),
      count,
      height: h,
      width: w,
      channels: c,
      classNames: ['a'],
      sources: [],
      notes: [],
    });
    const train = make(60, 71);
    const test = make(9, 72);
    const pre = await fitPreprocessor('gcn-zca', train);
    expect(pre.stats?.kind).toBe('zca');
    const whole = await pre.applyTo(test);
    expect(whole.labels).toBe(test.labels);
    // float32 sums on the GPU, float64 on the CPU.
    const cpu = pre.apply(test.images, test.count, test);
    expect(relErrNorm(whole.images, cpu)).toBeLessThan(1e-5);
    // One image at a time (what `nin predict` does) gives the same rows.
    expect(relErrNorm(pre.apply(test.images.subarray(dim, 2 * dim), 1, test), whole.images.subarray(dim, 2 * dim))).toBeLessThan(1e-5);
    // In chunks of 2 examples (the last one partial): the same rows.
    const gcn = new Float32Array(test.images);
    globalContrastNormalize(gcn, dim, NIN_GCN);
    const live = pool().stats.liveBuffers;
    pool().resetPeaks();
    const chunked = await whitenOnGpu(pre.stats as ZcaStats, gcn, test.count, 2 * 4 * dim);
    expect(relErrNorm(chunked, whole.images)).toBeLessThan(1e-6);
    // Its buffers go back to the device, not to the pool, where training would keep them for the run.
    expect(pool().stats.pooledBytes).toBe(0);
    expect(pool().stats.liveBuffers).toBe(live); // each chunk's, W's and the zero bias freed
    // Held at once: W, the bias and chunks of 2 examples, less than W, the bias and the 9 examples in and out.
    expect(pool().stats.peakLiveBytes - pool().stats.liveBytes).toBeLessThan(4 * (dim * dim + dim + 2 * test.count * dim));
    // With GEMMs on (emulated) f16 matrix units, whitening still runs in f32: the same rows.
    forceMatrixMode({ component: 'f16', ...EMULATED_MATRIX, shape: { ...EMULATED_MATRIX.shape }, emulated: true });
    try {
      const gcn16 = new Float32Array(test.images);
      globalContrastNormalize(gcn16, dim, NIN_GCN);
      expect(relErrNorm(await whitenOnGpu(pre.stats as ZcaStats, gcn16, test.count), whole.images)).toBeLessThan(1e-6);
    } finally {
      forceMatrixMode(undefined);
    }
    // The raw images are left alone.
    expect(test.images.every((v) => Number.isInteger(v))).toBe(true);
    // Whitened training data: zero mean and (nearly) identity covariance on the directions kept.
    const t = (await pre.applyTo(train)).images;
    let meanAbs = 0;
    for (let j = 0; j < dim; j++) {
      let m = 0;
      for (let s = 0; s < train.count; s++) m += t[s * dim + j];
      meanAbs = Math.max(meanAbs, Math.abs(m / train.count));
    }
    expect(meanAbs).toBeLessThan(1e-4);
    // The fit, against the GCN'd training data's own covariance Σ (float64, here): W·(Σ + εI)·W = I,
    // and so the whitened data's covariance is Σ·(Σ + εI)⁻¹ = I − ε·W² (the directions ε swamps shrink).
    const { whitening: W, epsilon } = pre.stats as ZcaStats;
    const g = new Float32Array(train.images);
    globalContrastNormalize(g, dim, NIN_GCN);
    const covariance = (x: ArrayLike<number>) => meanAndCovariance(x, train.count, dim).cov;
    const matmul = (a: Float64Array, b: Float64Array) => {
      const out = new Float64Array(dim * dim);
      for (let i = 0; i < dim; i++) for (let k = 0; k < dim; k++) for (let j = 0; j < dim; j++) out[i * dim + j] += a[i * dim + k] * b[k * dim + j];
      return out;
    };
    const sigma = covariance(g);
    for (let k = 0; k < dim; k++) sigma[k * dim + k] += epsilon;
    const identity = (i: number, j: number) => (i === j ? 1 : 0);
    const wSw = matmul(matmul(W, sigma), W);
    const w2 = matmul(W, W);
    const covT = covariance(t);
    let fitErr = 0;
    let outErr = 0;
    for (let i = 0; i < dim; i++) {
      for (let j = 0; j < dim; j++) {
        fitErr = Math.max(fitErr, Math.abs(wSw[i * dim + j] - identity(i, j)));
        outErr = Math.max(outErr, Math.abs(covT[i * dim + j] - (identity(i, j) - epsilon * w2[i * dim + j])));
      }
    }
    expect(fitErr, 'W·(Σ + εI)·W against I').toBeLessThan(1e-9);
    expect(outErr, "the whitened data's covariance against I − ε·W²").toBeLessThan(1e-4);
  });
});

describe('preprocessing edge cases', () => {
  it('a channel of one constant value is centred, not divided by its zero spread', () => {
    const x = Float32Array.of(1, 5, 1, 7); // channel 0: 1, 1; channel 1: 5, 7
    expect(Array.from(standardizeChannels(x, computeChannelStats(x, 2), new Float32Array(4)))).toEqual([0, -1, 0, 1]);
    // A later picture whose constant channel differs keeps the difference (the channel is not zeroed).
    expect(Array.from(standardizeChannels(Float32Array.of(3, 6), computeChannelStats(x, 2), new Float32Array(2)))).toEqual([2, 0]);
    expect(() => computeChannelStats(new Float32Array(7), 3)).toThrow('computeChannelStats: 7 values is not a multiple of 3 channels');
  });

  it("GCN replaces only a spread below minDivisor by 1 (pylearn2's <): one equal to it still divides", () => {
    // [0, 2] centred is [−1, 1], L2 norm √2 at scale 1.
    const out = globalContrastNormalize(Float32Array.of(0, 2), 2, { scale: 1, minDivisor: Math.SQRT2 }, new Float32Array(2));
    expect(Array.from(out)).toEqual([Math.fround(-1 / Math.SQRT2), Math.fround(1 / Math.SQRT2)]);
  });

  it("'none' maps pixels 0..255 to 0..1 and nothing else", () => {
    expect(Array.from(new Preprocessor('none', null).apply(Float32Array.of(0, 255, 51), 3, { height: 1, width: 1, channels: 1 }))).toEqual([0, 1, Math.fround(0.2)]);
  });

  it("damaged statistics are refused before use: a std for fewer channels than the mean's, a whitening that is not a number, a transform of no known name; whitening the wrong number of values", async () => {
    const rgb = { height: 1, width: 1, channels: 3 };
    const channel = (mean: number[], std: number[]) => new Preprocessor('standardize', { kind: 'channel', channels: mean.length, mean: Float64Array.from(mean), std: Float64Array.from(std), count: 4 });
    expect(() => channel([1, 2, 3], [1, 1, 1]).checkInput(rgb)).not.toThrow();
    expect(() => channel([1, 2, 3], [1, 1]).checkInput(rgb)).toThrow("preprocessing statistics: mean and std for 3 and 2 channels, the model's input has 3");
    const zca = (whitening: number[]): ZcaStats => ({ kind: 'zca', dim: 2, epsilon: 0.1, count: 4, mean: new Float64Array(2), whitening: Float64Array.from(whitening), eigenvalues: Float64Array.of(1, 1) });
    const two = { height: 1, width: 2, channels: 1 };
    expect(() => new Preprocessor('gcn-zca', zca([1, 0, 0, 1])).checkInput(two)).not.toThrow();
    expect(() => new Preprocessor('gcn-zca', zca([1, 0, NaN, 1])).checkInput(two)).toThrow('preprocessing statistics: whitening[2] is NaN, expected a finite number');
    expect(() => Preprocessor.fromTensors({}, { 'preprocess.transform': 'whiten' })).toThrow(`unknown preprocessing 'whiten' (metadata "preprocess.transform"; known: ${PREPROCESS_KINDS.join(', ')})`);
    await expect(whitenOnGpu(zca([1, 0, 0, 1]), new Float32Array(5), 2)).rejects.toThrow('whitenOnGpu: 5 values are not 2 examples of 2 features');
  });
});
