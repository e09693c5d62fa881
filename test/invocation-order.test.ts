// Invocation reordering (engine/invocation-order.ts): a bijection on each workgroup's invocations,
// and a race detector on lavapipe, which hides missing barriers by running invocations in order.
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu, gpu } from '../engine/device.ts';
import { invocationOrder, reorderInvocations, setInvocationOrder, type InvocationOrder } from '../engine/invocation-order.ts';
import { dispatch } from '../engine/runtime.ts';
import { Tensor } from '../engine/tensor.ts';

beforeAll(async () => { await getGpu(); });
const initial = invocationOrder();
afterEach(() => setInvocationOrder(initial));
afterAll(() => closeGpu());

const ORDERS: InvocationOrder[] = ['natural', 'reverse', 'scramble'];

/** Runs a kernel writing `n` u32 values (as i32 tensors) and returns them. */
async function run(name: string, code: string, n: number, groups = 1): Promise<number[]> {
  const out = Tensor.fromArray(new Array(n).fill(-1), [n], 'i32');
  dispatch({ name, code }, [out], [groups]);
  return Array.from(await out.toArray());
}

describe('reordered invocations', () => {
  it('are a bijection: each local_invocation_index, and each local_invocation_id of a 2-D workgroup, is taken once', async () => {
    const byIndex = `@group(0) @binding(0) var<storage, read_write> out: array<i32>;
@compute @workgroup_size(96)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) { out[wid.x * 96u + lid] = i32(lid); }`;
    const byId = `@group(0) @binding(0) var<storage, read_write> out: array<i32>;
@compute @workgroup_size(16, 6)
fn main(@builtin(local_invocation_id) lid3: vec3u) { out[lid3.y * 16u + lid3.x] = i32(lid3.x + 100u * lid3.y); }`;
    for (const order of ORDERS) {
      setInvocationOrder(order);
      expect(await run('by_index', byIndex, 192, 2), order).toEqual(Array.from({ length: 192 }, (_, i) => i % 96));
      expect(await run('by_id', byId, 96), order).toEqual(Array.from({ length: 96 }, (_, i) => (i % 16) + 100 * Math.floor(i / 16)));
    }
    // 96 = 2⁵·3 is coprime to the scramble's multiplier; the WGSL says which one it took.
    expect(reorderInvocations(byIndex, 'scramble')).toMatch(/\* 37u \+ 11u\) % 96u/);
    expect(reorderInvocations(`@compute @workgroup_size(74) fn main(@builtin(local_invocation_index) i: u32) {}`, 'scramble')).toMatch(/\* 39u \+ 11u\) % 74u/);
    expect(reorderInvocations(byIndex, 'natural')).toBe(byIndex);
    // vec3<u32> is vec3u; builtins it cannot rename consistently are refused, not skipped.
    expect(reorderInvocations(`@compute @workgroup_size(8, 2) fn main(@builtin(local_invocation_id) l: vec3<u32>) {}`, 'reverse')).toMatch(/let l = vec3u\(/);
    expect(() => reorderInvocations(`@compute @workgroup_size(8) fn main(@builtin(local_invocation_id) l: vec3i) {}`, 'reverse')).toThrow(/cannot read the local invocation builtins/);
    expect(() => reorderInvocations(`@compute @workgroup_size(8) fn main(@builtin(local_invocation_index) l: u32, @builtin(global_invocation_id) g: vec3u) {}`, 'reverse')).toThrow(/global_invocation_id/);
    expect(() => reorderInvocations(`const WG = 64u;\n@compute @workgroup_size(WG) fn main(@builtin(local_invocation_index) l: u32) {}`, 'reverse')).toThrow(/workgroup size 'WG' is not literal/);
  });

  it('expose a missing barrier that lavapipe hides: each invocation reads what the one before it wrote', async () => {
    const kernel = (barrier: boolean) => `@group(0) @binding(0) var<storage, read_write> out: array<i32>;
var<workgroup> s: array<i32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32) {
  s[lid] = i32(lid) + 1;${barrier ? '\n  workgroupBarrier();' : ''}
  out[lid] = s[(lid + 63u) % 64u];
}`;
    const expected = Array.from({ length: 64 }, (_, i) => ((i + 63) % 64) + 1);
    for (const order of ORDERS) {
      setInvocationOrder(order);
      expect(await run('neighbour_with_barrier', kernel(true), 64), order).toEqual(expected);
    }
    // Without the barrier: lavapipe's chunks run in invocation order, so only invocation 0 (which
    // reads 63's value) can see a stale one; reordered, every chunk's first invocation does. (Natural
    // first: the reordered runs must not reuse its cached pipeline.)
    if (!/llvmpipe|lavapipe/i.test(gpu().adapterName)) return; // a GPU's own order is its own
    const wrongIn = async (order: InvocationOrder) => {
      setInvocationOrder(order);
      const got = await run('neighbour_without_barrier', kernel(false), 64);
      return got.filter((v, i) => v !== expected[i]).length;
    };
    expect(await wrongIn('natural')).toBeLessThanOrEqual(1);
    for (const order of ['reverse', 'scramble'] as const) {
      const wrong = await wrongIn(order);
      expect(wrong, `${order}: ${wrong} invocations read a value not yet written`).toBeGreaterThan(1);
    }
  });

  it('a bad NIN_INVOCATION_ORDER is a GpuError when the GPU is acquired or a kernel compiles, not a crash at import', () => {
    const env = { ...process.env, NIN_INVOCATION_ORDER: 'backwards' };
    // Each use prints the error it gets; importing alone must not throw.
    const script = `(async () => {
      const device = await import('./engine/device.ts');
      const order = await import('./engine/invocation-order.ts');
      for (const use of [() => device.getGpu(), async () => order.invocationOrder()]) {
        try { await use(); console.log('no error'); } catch (e) { console.log(e.name + ': ' + e.message); }
      }
    })();`;
    const printed = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { env, encoding: 'utf8', stdio: 'pipe' });
    const expected = "GpuError: NIN_INVOCATION_ORDER='backwards': expected 'natural' or 'reverse' or 'scramble'";
    expect(printed.trim().split('\n')).toEqual([expected, expected]);
    // Commands that never touch the GPU work as usual.
    expect(execFileSync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', '--help'], { env, encoding: 'utf8', stdio: 'pipe' })).toMatch(/nin predict/);
  });
});
