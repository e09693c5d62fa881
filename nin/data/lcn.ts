// Local contrast normalisation (LeCun's), as pylearn2's lecun_lcn: the maxout paper's SVHN
// pipeline (GCN with scale 1, then LCN), which NIN followed for SVHN. Per image and channel, with
// G a normalised k×k Gaussian (k = 7, σ = 2) applied with zero padding ("same" size):
//   m = G ∗ x,   s = sqrt(G ∗ x²),   y = (x − m) / max(mean(s), s, threshold)
// where mean(s) is over the image's pixels. s is the local norm of x itself, not of x − m: that is
// what pylearn2 computes, and what the maxout/NIN SVHN numbers were obtained with.
// blurSeparable and lcnImages reference nothing outside themselves but each other, so
// nin/data/parallel.ts can ship them to worker threads as source text.

export interface LcnOptions {
  kernelSize?: number;
  sigma?: number;
  threshold?: number;
}

/** pylearn2's LeCunLCN defaults (preprocessing.LeCunLCN((32, 32)) in the maxout SVHN script). */
export const MAXOUT_LCN: Required<LcnOptions> = { kernelSize: 7, sigma: 2, threshold: 1e-4 };

/** The 1-D factor g of the normalised 2-D Gaussian G = g ⊗ g (it sums to 1, so G does too). */
export function gaussianTaps(kernelSize: number, sigma: number): Float64Array {
  if (!Number.isInteger(kernelSize) || kernelSize < 1 || kernelSize % 2 !== 1) throw new RangeError(`LCN: kernel size must be a positive odd integer, got ${kernelSize}`);
  if (!(sigma > 0)) throw new RangeError(`LCN: σ must be positive, got ${sigma}`);
  const mid = (kernelSize - 1) / 2;
  const g = Float64Array.from({ length: kernelSize }, (_, i) => Math.exp(-((i - mid) ** 2) / (2 * sigma * sigma)));
  const sum = g.reduce((a, b) => a + b, 0);
  return g.map((v) => v / sum);
}

/** `dst = g ∗ src` along rows, then along columns, with zeros outside the H×W plane. */
export function blurSeparable(src: Float64Array, dst: Float64Array, tmp: Float64Array, H: number, W: number, g: Float64Array): void {
  const mid = (g.length - 1) / 2;
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < W; c++) {
      let acc = 0;
      for (let k = Math.max(0, mid - c); k < g.length && c + k - mid < W; k++) acc += g[k] * src[r * W + c + k - mid];
      tmp[r * W + c] = acc;
    }
  }
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < W; c++) {
      let acc = 0;
      for (let k = Math.max(0, mid - r); k < g.length && r + k - mid < H; k++) acc += g[k] * tmp[(r + k - mid) * W + c];
      dst[r * W + c] = acc;
    }
  }
}

/** LCN of images begin..end−1 (NHWC, H×W×C each) of `src` into `dst` (may be `src`); float64 inside. */
export function lcnImages(src: Float32Array, dst: Float32Array, begin: number, end: number, H: number, W: number, C: number, g: Float64Array, threshold: number): void {
  const P = H * W;
  const plane = new Float64Array(P);
  const square = new Float64Array(P);
  const mean = new Float64Array(P);
  const norm = new Float64Array(P);
  const tmp = new Float64Array(P);
  for (let base = begin * P * C; base < end * P * C; base += P * C) {
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < P; p++) {
        const v = src[base + p * C + c];
        plane[p] = v;
        square[p] = v * v;
      }
      blurSeparable(plane, mean, tmp, H, W, g);
      blurSeparable(square, norm, tmp, H, W, g);
      let meanNorm = 0;
      for (let p = 0; p < P; p++) meanNorm += (norm[p] = Math.sqrt(Math.max(norm[p], 0)));
      meanNorm /= P;
      for (let p = 0; p < P; p++) dst[base + p * C + c] = (plane[p] - mean[p]) / Math.max(meanNorm, norm[p], threshold);
    }
  }
}

export interface ImageShape {
  height: number;
  width: number;
  channels: number;
}

/** Images of `shape` in `images`, or an error naming the mismatch. */
export function imageCount(images: Float32Array, shape: ImageShape, what: string, out: Float32Array = images): number {
  const per = shape.height * shape.width * shape.channels;
  if (images.length % per !== 0 || out.length !== images.length) {
    throw new RangeError(`${what}: ${images.length} values is not a whole number of ${shape.height}×${shape.width}×${shape.channels} images (output ${out.length})`);
  }
  return images.length / per;
}

/** LCN of NHWC images on this thread, into `out` (default: in place); float32 out. */
export function localContrastNormalize(images: Float32Array, shape: ImageShape, opts: LcnOptions = {}, out: Float32Array = images): Float32Array {
  const { kernelSize, sigma, threshold } = { ...MAXOUT_LCN, ...opts };
  const n = imageCount(images, shape, 'localContrastNormalize', out);
  lcnImages(images, out, 0, n, shape.height, shape.width, shape.channels, gaussianTaps(kernelSize, sigma), threshold);
  return out;
}
