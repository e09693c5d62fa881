// The benches' FLOP counts, against the network written out by hand: GFLOP/s and TFLOP/s in
// bench/RESULTS.md rest on them.
import { describe, expect, it } from 'vitest';
import { convolutionFlops } from '../bench/train-step.ts';
import { MODELS } from '../nin/model.ts';

describe('bench FLOP counts', () => {
  it("the CIFAR-10 NIN's convolutions: forward, and a training step without the image's input gradient", () => {
    const mlpconv = (HW: number, K: number, Ci: number, [c1, c2, c3]: number[]) => 2 * HW * HW * (K * K * Ci * c1 + c1 * c2 + c2 * c3);
    const forward = mlpconv(32, 5, 3, [192, 160, 96]) + mlpconv(16, 5, 96, [192, 192, 192]) + mlpconv(8, 3, 192, [192, 192, 10]);
    const f = convolutionFlops(MODELS.cifar10);
    expect(f.forward).toBe(forward);
    expect(f.forward).toBe(444_973_056);
    expect(f.train).toBe(3 * forward - 2 * 32 * 32 * 5 * 5 * 3 * 192);
    // With a fully connected head its GEMM counts too (8·8·10 → 10).
    expect(convolutionFlops({ ...MODELS.cifar10, head: 'fc' }).forward).toBe(forward + 2 * 8 * 8 * 10 * 10);
  });
});
