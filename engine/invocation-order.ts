// Workgroup invocation order, to find missing barriers on a CPU adapter. Lavapipe runs a
// workgroup's invocations in chunks of its SIMD width, always in local_invocation_index order, so
// a kernel that reads what a lower-numbered invocation wrote, with no barrier between, gives the
// right answer there and a wrong one on a GPU. Renumbering the invocations through a bijection
// (reversed, or scrambled) changes which of them run first and which share a chunk; a kernel whose
// results change under it has a race. NIN_INVOCATION_ORDER=reverse|scramble applies it to every
// kernel compiled (the barrier-using kernels' tests run scrambled too: vitest.config.ts); tests may
// set it directly. Only the local builtins are renumbered: a kernel that takes
// global_invocation_id is refused rather than given ids that disagree with them.
import { invocationOrderSetting, type INVOCATION_ORDERS } from './device.ts';

export type InvocationOrder = (typeof INVOCATION_ORDERS)[number];

// Read when first needed, not at import: a bad value must not break commands that never use the GPU.
let order: InvocationOrder | null = null;

export function invocationOrder(): InvocationOrder {
  return (order ??= invocationOrderSetting());
}

/** Sets the order for kernels compiled from now on (the pipeline cache keys on it). */
export function setInvocationOrder(o: InvocationOrder): void {
  order = o;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * `code` with its entry point's local_invocation_index / local_invocation_id renumbered: invocation
 * r acts as p(r), with p(r) = T − 1 − r (reverse) or (a·r + 11) mod T, a coprime to T (scramble),
 * T the workgroup's size. Kernels without those builtins are returned unchanged.
 */
export function reorderInvocations(code: string, o: InvocationOrder): string {
  if (o === 'natural') return code;
  const entry = /@compute\s+@workgroup_size\(([^)]*)\)\s*fn\s+main\s*\(([\s\S]*?)\)\s*\{/.exec(code);
  if (!entry) throw new Error('reorderInvocations: no `@compute @workgroup_size(...) fn main(...) {` in the kernel');
  const size = entry[1].split(',').map((s) => Number(s.trim().replace(/u$/, '')));
  if (size.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`reorderInvocations: workgroup size '${entry[1]}' is not literal`);
  const [X, Y = 1, Z = 1] = size;
  const T = X * Y * Z;
  let params = entry[2];
  const index = /@builtin\(local_invocation_index\)\s+(\w+)\s*:\s*u32/.exec(params);
  const id = /@builtin\(local_invocation_id\)\s+(\w+)\s*:\s*vec3(?:u|<u32>)/.exec(params);
  const builtins = params.match(/@builtin\(local_invocation_(?:index|id)\)/g)?.length ?? 0;
  if (builtins !== (index ? 1 : 0) + (id ? 1 : 0)) throw new Error(`reorderInvocations: cannot read the local invocation builtins in 'fn main(${entry[2]})'`);
  if (/@builtin\(global_invocation_id\)/.test(params)) throw new Error('reorderInvocations: the kernel takes global_invocation_id, which would disagree with the renumbered local ids');
  if (!index && !id) return code;
  if (index) params = params.replace(index[0], `@builtin(local_invocation_index) ${index[1]}_natural: u32`);
  if (id) params = params.replace(id[0], `@builtin(local_invocation_id) ${id[1]}_natural: vec3u`);
  const r = index ? `${index[1]}_natural` : `(${id![1]}_natural.x + ${X}u * ${id![1]}_natural.y + ${X * Y}u * ${id![1]}_natural.z)`;
  let a = 37;
  while (gcd(a, T) !== 1) a += 2;
  const p = o === 'reverse' ? `${T - 1}u - ${r}` : `(${r} * ${a}u + 11u) % ${T}u`;
  let body = `\n  let reordered_index = ${p};`;
  if (index) body += `\n  let ${index[1]} = reordered_index;`;
  if (id) body += `\n  let ${id[1]} = vec3u(reordered_index % ${X}u, (reordered_index / ${X}u) % ${Y}u, reordered_index / ${X * Y}u);`;
  return `${code.slice(0, entry.index)}@compute @workgroup_size(${entry[1]})\nfn main(${params}) {${body}${code.slice(entry.index + entry[0].length)}`;
}
