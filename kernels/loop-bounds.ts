// Loop bounds as the shader compiler should see them. Lavapipe's LLVM fully unrolls loops of known
// small trip counts, and a kernel so unrolled can take many times as long to compile; hiding a
// count (`select(n, 0u, nwg.z == 0u)`: a dispatch never has 0 workgroups along z, but the compiler
// cannot know it) keeps the loop a loop. Same loop, same results.
//   noUnrollBound(n)      small counts hidden on every adapter (the fused mlpconv's widths)
//   gpuUnrollBound(expr)  hidden on a CPU adapter only: GPU compilers unroll to good effect
import { gpu } from '../engine/device.ts';

/**
 * WGSL for a loop's trip count n, hidden from the shader compiler when n is small. Lavapipe fully
 * unrolls a loop of few enough known trips (how few depends on the body: around a fused mlpconv's
 * register tile, 17 trips unrolled and 24 did not), and such a kernel then took LLVM 8–30 s to
 * compile, against about 2 s with the count hidden (session 26). The tests' odd widths (17, 21, …)
 * hit this on every shape. Counts from 2 up to 32 are hidden, for a margin (a count of 1 is no
 * loop); the paper's widths (48 and up) keep their literal bound on every adapter. Hidden as
 * `select(n, 0, nwg.z == 0)`: a dispatch never has 0 workgroups along z, but the compiler cannot
 * know it. Needs `nwg` (@builtin(num_workgroups)) in scope.
 */
export function noUnrollBound(n: number): string {
  return n > 32 || n === 1 ? `${n}u` : hiddenBound(`${n}u`);
}

/** `expr` (u32) as the compiler cannot see it: a dispatch never has 0 workgroups along z. */
function hiddenBound(expr: string): string {
  return `select(${expr}, 0u, nwg.z == 0u)`;
}

/**
 * WGSL for a tiled kernel's loop bound `expr` (a u32 literal or constant): as written on GPUs, whose
 * compilers unroll such loops to good effect, and hidden like noUnrollBound's on a CPU adapter. The
 * tiled kernels run there only in tests, and lavapipe's full unroll of a GEMM's k-loop around its
 * register tile, and of the staging loops around their im2col loads, made it compile each one up to
 * 8× as long: 1.2 s against 0.15–0.23 s for three of the suite's tiled convolution GEMMs, 6.7 s
 * against 2.4–3.5 s for an emulated matrix GEMM (session 28). Same loop, same results; only the
 * compiler's view of the count differs. Needs `nwg` in scope.
 */
export function gpuUnrollBound(expr: string): string {
  return gpu().cpuAdapter ? hiddenBound(expr) : expr;
}
