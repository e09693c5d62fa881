// The engine's public surface.
export { getGpu, gpu, closeGpu, GpuError, type Gpu } from './device.ts';
export { Tensor, tidy, keep, expectShape, expectDtype } from './tensor.ts';
export { backward, noGrad, param, zeroGrad, record, isGradEnabled } from './autograd.ts';
export { flush, sync, pool, runtimeStats, checkErrors, trimPool, profileScope } from './runtime.ts';
export { startProfiler, formatProfile, formatScopeProfile, Profiler, type ProfileRow, type ScopeProfile } from './profiler.ts';
