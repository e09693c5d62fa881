// The element-wise ops (kernels/elementwise.ts): reshape, add, sub, mul, scale, relu, sum, mean,
// each against the float64 reference (one-line functions here), forward and backward by central
// differences, on odd shapes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { backward, param } from '../engine/autograd.ts';
import { runtimeStats } from '../engine/runtime.ts';
import { Tensor } from '../engine/tensor.ts';
import { add, dot, f32, fill, mean, mul, relu, reshape, scale, sub, sum } from '../kernels/elementwise.ts';
import { expectClose, randomArray } from './helpers.ts';
import { dotRef, numericalGrad, refTensor, reluRef } from './reference.ts';

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

describe('shape ops', () => {
  it('reshape and add pass gradients through unchanged', async () => {
    const xs = randomArray(24, 11), r = randomArray(24, 12);
    const x = param(Tensor.fromArray(xs, [2, 3, 4]));
    const y = add(reshape(x, [6, 4]), reshape(x, [6, 4]));
    expect(y.shape).toEqual([6, 4]);
    expect(Array.from(await y.toArray())).toEqual(Array.from(xs, (v) => 2 * v));
    backward(dot(y, Tensor.fromArray(r, [6, 4])));
    expect(x.grad!.shape).toEqual([2, 3, 4]);
    expect(Array.from(await x.grad!.toArray())).toEqual(Array.from(r, (v) => 2 * v));
    expect(() => reshape(x, [5, 5])).toThrow(/reshape: \[2, 3, 4\] has 24 elements, \[5, 5\] needs 25/);
  });

  // The exact-value tests above and below fix each op alone; this one checks the tape's chain of
  // relu, add and reshape on two different leaves against central differences of the float64
  // reference, on an odd shape (105 elements: the last workgroup part-full).
  it('relu, add and reshape: gradients of both leaves match central differences on the float64 reference', async () => {
    const as = randomArray(105, 21), bs = randomArray(105, 22), r = randomArray(105, 23);
    const a = param(Tensor.fromArray(as, [3, 5, 7])), b = param(Tensor.fromArray(bs, [3, 5, 7]));
    backward(dot(relu(add(reshape(relu(a), [15, 7]), reshape(b, [15, 7]))), Tensor.fromArray(r, [15, 7])));
    const aRef = refTensor([3, 5, 7], as), bRef = refTensor([3, 5, 7], bs);
    const lossRef = () => dotRef(reluRef({ shape: [15, 7], data: reluRef(aRef).data.map((v, i) => v + bRef.data[i]) }), r);
    expectClose('d/da', await a.grad!.toArray(), numericalGrad(lossRef, aRef), 1e-6);
    expectClose('d/db', await b.grad!.toArray(), numericalGrad(lossRef, bRef), 1e-6);
  });
});

describe('arithmetic ops', () => {
  // Each against the float64 reference, forward and (central differences) backward, on an odd
  // shape: 105 elements, and 2,310 for the sums, which split their reduction.
  const as = randomArray(105, 31), bs = randomArray(105, 32), r = randomArray(105, 33);
  const aRef = refTensor([3, 5, 7], as), bRef = refTensor([3, 5, 7], bs);
  const cases: [string, (a: Tensor, b: Tensor) => Tensor, (a: number, b: number) => number][] = [
    ['sub', sub, (a, b) => a - b],
    ['mul', mul, (a, b) => a * b],
    ['scale by −0.3 (b unused)', (a) => scale(a, -0.3), (a) => -0.3 * a],
  ];
  for (const [name, op, f] of cases) {
    it(`${name}: values and both leaves' gradients match the float64 reference`, async () => {
      const a = param(Tensor.fromArray(as, [3, 5, 7])), b = param(Tensor.fromArray(bs, [3, 5, 7]));
      const y = op(a, b);
      const want = Array.from(as, (v, i) => f(v, bs[i]));
      expectClose('forward', await y.toArray(), want, 1e-6);
      backward(dot(y, Tensor.fromArray(r, [3, 5, 7])));
      const lossRef = () => dotRef({ shape: [3, 5, 7], data: aRef.data.map((v, i) => f(v, bRef.data[i])) }, r);
      expectClose('d/da', await a.grad!.toArray(), numericalGrad(lossRef, aRef), 1e-6);
      if (name.startsWith('scale')) expect(b.grad).toBeNull();
      else expectClose('d/db', await b.grad!.toArray(), numericalGrad(lossRef, bRef), 1e-6);
    });
  }

  // One input frozen (requiresGrad false): it gets no gradient, and the other's is still right. mul's
  // backward makes each input's gradient only where that input needs one (from the other input's
  // values: a slot mixed up shows); add and sub return both, and the frozen one is dropped.
  for (const [name, op, f] of [['add', add, (a: number, b: number) => a + b] as const, ...cases.slice(0, 2)])
  for (const frozen of ['a', 'b'] as const) {
    it(`${name} with ${frozen} frozen: ${frozen} gets no gradient, the other's matches the float64 reference`, async () => {
      const a = Tensor.fromArray(as, [3, 5, 7]), b = Tensor.fromArray(bs, [3, 5, 7]);
      const [trained, trainedRef] = frozen === 'a' ? [param(b), bRef] : [param(a), aRef];
      backward(dot(op(a, b), Tensor.fromArray(r, [3, 5, 7])));
      expect((frozen === 'a' ? a : b).grad).toBeNull();
      const lossRef = () => dotRef({ shape: [3, 5, 7], data: aRef.data.map((v, i) => f(v, bRef.data[i])) }, r);
      expectClose(`d/d${frozen === 'a' ? 'b' : 'a'}`, await trained.grad!.toArray(), numericalGrad(lossRef, trainedRef), 1e-6);
    });
  }

  it('sum and mean: the float64 values, and gradients 1 and 1/n everywhere; a mean squared error through sub and mul', async () => {
    const n = 2310;
    const xs = randomArray(n, 34);
    const x = param(Tensor.fromArray(xs, [2, 3, 5, 7, 11]));
    const total = xs.reduce((t, v) => t + v, 0);
    expect(Math.abs((await sum(x).item()) - total)).toBeLessThan(1e-5 * xs.reduce((t, v) => t + Math.abs(v), 0));
    const m = mean(x);
    expect(Math.abs((await m.item()) - total / n)).toBeLessThan(1e-5 * xs.reduce((t, v) => t + Math.abs(v), 0) / n);
    backward(m);
    expect(Array.from(await x.grad!.toArray())).toEqual(Array.from({ length: n }, () => Math.fround(1 / n)));
    // MSE: (a − b) used twice, so its gradients add: d/da = 2(a − b)/n, d/db = −2(a − b)/n.
    const a = param(Tensor.fromArray(as, [3, 5, 7])), b = param(Tensor.fromArray(bs, [3, 5, 7]));
    const d = sub(a, b);
    const mse = mean(mul(d, d));
    const lossRef = () => aRef.data.reduce((t, v, i) => t + (v - bRef.data[i]) ** 2, 0) / 105;
    expect(await mse.item()).toBeCloseTo(lossRef(), 6);
    backward(mse);
    expectClose('d/da', await a.grad!.toArray(), numericalGrad(lossRef, aRef), 1e-6);
    expectClose('d/db', await b.grad!.toArray(), numericalGrad(lossRef, bRef), 1e-6);
  });

  // The tests above reach sum and mean only as the loss itself (upstream gradient 1): here each
  // sits below another op, so its backward must scale by the upstream gradient it is given.
  it('sum and mean below a loss: gradients of 1.7·sum(a) − 0.6·mean(b) match central differences on the float64 reference', async () => {
    const a = param(Tensor.fromArray(as, [3, 5, 7])), b = param(Tensor.fromArray(bs, [3, 5, 7]));
    backward(add(dot(sum(a), Tensor.fromArray([1.7], [1])), dot(mean(b), Tensor.fromArray([-0.6], [1]))));
    const lossRef = () => 1.7 * aRef.data.reduce((t, v) => t + v, 0) - 0.6 * bRef.data.reduce((t, v) => t + v, 0) / 105;
    expectClose('d/da', await a.grad!.toArray(), numericalGrad(lossRef, aRef), 1e-6);
    expectClose('d/db', await b.grad!.toArray(), numericalGrad(lossRef, bRef), 1e-6);
  });

  it('reshape to another number of elements is refused, fewer as well as more', () => {
    const x = Tensor.fromArray(randomArray(6, 13), [2, 3]);
    expect(() => reshape(x, [5])).toThrow(new RangeError('reshape: [2, 3] has 6 elements, [5] needs 5'));
    expect(() => reshape(x, [7])).toThrow(new RangeError('reshape: [2, 3] has 6 elements, [7] needs 7'));
    x.dispose();
  });

  it('numbers JavaScript writes with an exponent (1e-7, 1e+21) become WGSL literals as they are (fill)', async () => {
    // (a ".0" appended to them, "1e-7.0", would not compile)
    expect([1e-7, 1e21, 2.5e-8, 3, 0.5].map(f32)).toEqual(['1e-7', '1e+21', '2.5e-8', '3.0', '0.5']);
    const t = Tensor.empty([5]);
    for (const v of [1e-7, 1e21]) {
      fill(t, v);
      expect(Array.from(await t.toArray())).toEqual(Array(5).fill(Math.fround(v)));
    }
    t.dispose();
  });

  it('scale takes its factor as a uniform: another factor compiles no other pipeline; a factor that is not finite is refused', async () => {
    const x = Tensor.fromArray(as, [3, 5, 7]);
    await scale(x, 2).toArray();
    const before = runtimeStats().pipelines;
    const y = scale(x, 0.125);
    expect(runtimeStats().pipelines).toBe(before);
    expect(Array.from(await y.toArray())).toEqual(Array.from(as, (v) => Math.fround(v * 0.125)));
    expect(() => scale(x, Infinity)).toThrow('scale: the factor must be a finite number, got Infinity');
    expect(() => mul(x, Tensor.fromArray(bs.subarray(0, 35), [5, 7]))).toThrow(/mul: b has shape \[5, 7\], expected \[3, 5, 7\]/);
  });
});
