// The engine's public surface: the device, tensors, the tape, the runtime and the profiler, and
// the ops (kernels/), so that a script needs one import.
export { getGpu, gpu, closeGpu, GpuError, GpuOutOfMemory, type Gpu } from './device.ts';
export { Tensor, TensorTooLarge, tidy, keep, expectShape, expectDtype, type BackwardFn, type DType } from './tensor.ts';
export { backward, noGrad, param, zeroGrad, record, isGradEnabled } from './autograd.ts';
export { flush, sync, pool, runtimeStats, checkErrors, trimPool, profileScope } from './runtime.ts';
export { startProfiler, formatProfile, formatScopeProfile, Profiler, type ProfileRow, type ScopeProfile } from './profiler.ts';
export { add, addInPlace, copyOf, fill, mean, mul, relu, reshape, scale, sub, sum } from '../kernels/elementwise.ts';
export { conv2d } from '../kernels/conv2d.ts';
export { mlpconv, type MlpconvParams, type MlpconvOptions } from '../kernels/mlpconv.ts';
export { avgPool2d, maxPool2d, type PoolOptions } from '../kernels/pool2d.ts';
export { dropout } from '../kernels/dropout.ts';
export { globalAvgPool } from '../kernels/gap.ts';
export { labelTensor, softmax, softmaxCrossEntropy } from '../kernels/softmax-cross-entropy.ts';
export { SGD, type ParamSpec } from '../kernels/sgd.ts';
