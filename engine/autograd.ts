// Autograd tape. Each op attaches its backward to its output when it runs (micrograd style); the
// "tape" is the graph those links form. backward() walks it in reverse topological order.
import { addInPlace, fill } from '../kernels/elementwise.ts';
import { GpuError } from './device.ts';
import { currentProfileScope, atProfileScope } from './runtime.ts';
import { keep, refusePromise, tidy, Tensor, type BackwardFn } from './tensor.ts';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording backward links (evaluation); ops then save nothing for backward. */
export function noGrad<R>(fn: () => R): R {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    const result = fn();
    // Recording is back on at fn's first await: the ops after it would record, and keep every
    // hidden activation for a backward that never comes.
    refusePromise('noGrad', result, 'would record again from the first await');
    return result;
  } finally {
    gradEnabled = prev;
  }
}

/** True when an op on these inputs must record its backward. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad);
}

/**
 * Links `out` to `parents` with `backward` if any parent needs a gradient. `saved` are internal
 * tensors kept only for backward: freed right after it runs, or with `out`.
 */
export function record(op: string, out: Tensor, parents: Tensor[], backward: BackwardFn, saved: Tensor[] = []): Tensor {
  out.op = op;
  out.profileScope = currentProfileScope();
  if (needsGrad(...parents)) {
    out.requiresGrad = true;
    out.parents = parents;
    out.recordedVersions = [out.version, ...parents.map((p) => p.version)];
    out.backwardFn = backward;
    out.saved = saved;
    for (const s of saved) keep(s);
  } else {
    for (const s of saved) s.dispose();
  }
  return out;
}

/**
 * For a tensor a backward reads that is neither a parent nor saved (e.g. softmaxCrossEntropy's
 * labels): the caller owns it, and disposing it before backward() must not go unnoticed (its
 * buffer may already hold another tensor's values).
 */
export function expectKeptForBackward(op: string, what: string, t: Tensor): void {
  if (t.isDisposed) {
    throw new GpuError(`${op} backward: ${what} (tensor #${t.id}, [${t.shape.join(', ')}]) was disposed before backward(); keep it until backward() has run`);
  }
  t.assertAlive(`${op} backward`);
}

/** Marks a tensor as a trainable leaf. */
export function param(t: Tensor): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`param: expected a Tensor, got ${t === null ? 'null' : typeof t}`);
  t.assertAlive('param');
  // An op's output kept its backward: gradients went through it to its inputs, and its .grad stayed null.
  if (t.backwardFn) throw new Error(`param: tensor #${t.id} is the output of '${t.op}', not a leaf; a parameter holds its own values (make it with Tensor.fromArray, or copyOf under noGrad())`);
  t.requiresGrad = true;
  t.op = 'param';
  return keep(t);
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS: deep nets must not hit the JS stack limit.
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i < node.parents.length) {
      top[1]++;
      const p = node.parents[i];
      if (p.requiresGrad && !seen.has(p)) {
        seen.add(p);
        stack.push([p, 0]);
      }
    } else {
      order.push(node);
      stack.pop();
    }
  }
  return order;
}

/**
 * Backpropagates from a scalar `loss`. Leaves get `.grad` (accumulated if already present, so
 * call zeroGrad between steps). Intermediate gradients and each node's saved tensors are freed as
 * soon as they have been used.
 */
export function backward(loss: Tensor): void {
  if (!(loss instanceof Tensor)) throw new TypeError(`backward: the loss must be a Tensor, got ${loss === null ? 'null' : typeof loss}`);
  if (loss.size !== 1) throw new RangeError(`backward: loss must be a scalar, got shape [${loss.shape.join(', ')}]`);
  if (!loss.requiresGrad) throw new Error('backward: loss does not depend on any tensor that requires a gradient (computed under noGrad(), or from no param())');
  const order = topoOrder(loss);
  refuseUnsafeBackward(order);
  for (const t of order) if (t.backwardFn) t.consumed = true;
  const grads = new Map<Tensor, Tensor>();
  // Leaves get their gradients only once every backward function has run: one that throws must
  // not leave some leaves with this step's gradient added and others without.
  const leafGrads: [Tensor, Tensor][] = [];
  // tidy: if a backward function throws, the pending gradients (and whatever it made) are freed too.
  tidy(() => noGrad(() => {
    const seed = Tensor.empty(loss.shape);
    atProfileScope(backwardScope(loss), () => fill(seed, 1));
    grads.set(loss, seed);
    for (let i = order.length - 1; i >= 0; i--) {
      const node = order[i];
      const g = grads.get(node);
      if (!g) continue;
      grads.delete(node);
      if (!node.backwardFn) {
        leafGrads.push([node, g]);
        continue;
      }
      const parentGrads = atProfileScope(backwardScope(node), () => node.backwardFn!(g));
      checkGradients(node, g, parentGrads);
      g.dispose();
      for (const s of node.saved) s.dispose();
      node.saved = [];
      node.parents.forEach((p, k) => {
        const pg = parentGrads[k];
        if (!pg || !p.requiresGrad) {
          pg?.dispose();
          return;
        }
        const prev = grads.get(p);
        if (prev) {
          atProfileScope(backwardScope(node), () => addInPlace(prev, pg)); // a tensor used twice: gradients add (in the backward of the op whose gradient came second)
          pg.dispose();
        } else {
          grads.set(p, pg);
        }
      });
    }
    for (const g of grads.values()) g.dispose();
    for (const [leaf, g] of leafGrads) {
      if (leaf.grad) {
        atProfileScope('gradient accumulation', () => addInPlace(leaf.grad!, g)); // a second backward() before zeroGrad
        g.dispose();
      } else {
        leaf.grad = keep(g);
      }
    }
  }));
}

/**
 * The graph states in which backward() would give wrong gradients or read freed buffers without an
 * error, each refused naming the tensor and op: disposed nodes or inputs, tensors written in place
 * since the forward pass, a closed device, a disposed .grad, a graph an earlier backward() consumed.
 */
function refuseUnsafeBackward(order: Tensor[]): void {
  // dispose() drops a node's backward: it would pass for a leaf and the gradient would stop there.
  const gone = order.find((t) => t.isDisposed);
  if (gone) throw new GpuError(`backward: tensor #${gone.id} (${gone.op}, [${gone.shape.join(', ')}]) on the path to the loss was disposed before backward(); keep it until backward() has run`);
  // An op's inputs that need no gradient (the images into the first conv) are not on that path,
  // but its backward may read them: named here, with the op, not by the kernel that would read them.
  for (const node of order) {
    if (!node.backwardFn) continue;
    const k = node.parents.findIndex((p) => p.isDisposed);
    if (k >= 0) {
      const p = node.parents[k];
      throw new GpuError(`backward: input ${k} of '${node.op}' (tensor #${node.id}), tensor #${p.id} (${p.op}, [${p.shape.join(', ')}]), was disposed before backward(); its backward reads its inputs: keep them until backward() has run`);
    }
  }
  // Written in place since its op ran (an optimiser step or an upload before backward()): the
  // gradient would be taken at the new values, not the ones the loss was computed from.
  for (const node of order) {
    if (!node.backwardFn) continue;
    const changed = [node, ...node.parents].findIndex((t, k) => t.version !== node.recordedVersions[k]);
    if (changed >= 0) {
      const t = changed === 0 ? node : node.parents[changed - 1];
      const which = changed === 0 ? 'its output' : `input ${changed - 1}`;
      throw new GpuError(`backward: ${which} of '${node.op}' (tensor #${node.id}), tensor #${t.id} (${t.op}, [${t.shape.join(', ')}]), was written in place (an SGD step, upload, fill or addInPlace) after the forward pass used it: its gradient would be of other values; run the forward pass again`);
    }
  }
  for (const t of order) t.assertAlive('backward'); // e.g. a graph made on a device closeGpu() has closed
  // (else the accumulation named an internal op: "addInPlace: input tensor … was already disposed")
  const freedGrad = order.find((t) => t.grad?.isDisposed);
  if (freedGrad) throw new GpuError(`backward: the .grad of tensor #${freedGrad.id} (${freedGrad.op}, [${freedGrad.shape.join(', ')}]) was disposed but is still set, so this backward cannot add to it; zeroGrad() frees and clears gradients`);
  // A backward frees what its ops saved: running a graph's backward again (also after one that
  // threw half-way) would read freed buffers and give wrong gradients without an error.
  const used = [...order].reverse().find((t) => t.consumed); // the one nearest the loss (the loss itself on a second backward)
  if (used) {
    throw new GpuError(
      `backward: the graph of tensor #${used.id} (${used.op}, [${used.shape.join(', ')}]) was already consumed by an earlier backward(), which freed what its ops saved; run the forward pass again to backpropagate again`,
    );
  }
}

/** The profile scope of a node's backward: its op's scope's (a profile's per-scope table). */
function backwardScope(node: Tensor): string {
  return node.profileScope ? `${node.profileScope} backward` : 'backward';
}

/** What a backward function returned must fit its node: one gradient per parent, each of its parent's shape, each its own. */
function checkGradients(node: Tensor, gradOut: Tensor, grads: (Tensor | null)[]): void {
  const where = `backward: the backward function of '${node.op}' (tensor #${node.id})`;
  if (!Array.isArray(grads) || grads.length !== node.parents.length) {
    throw new Error(`${where} returned ${Array.isArray(grads) ? grads.length : String(grads)} gradients for its ${node.parents.length} inputs`);
  }
  grads.forEach((pg, k) => {
    if (!pg) return;
    const p = node.parents[k];
    if (pg === gradOut || grads.indexOf(pg) !== k) {
      // backward() disposes gradOut, and adds or disposes each returned gradient: a shared one would be freed under its other user.
      throw new Error(`${where} returned ${pg === gradOut ? 'its incoming gradient itself' : 'the same tensor twice'} as input ${k}'s gradient; return a copy (copyOf)`);
    }
    if (!(pg instanceof Tensor) || pg.shape.length !== p.shape.length || pg.shape.some((d, i) => d !== p.shape[i])) {
      const got = pg instanceof Tensor ? `shape [${pg.shape.join(', ')}]` : String(pg);
      throw new RangeError(`${where} returned a gradient of ${got} for input ${k} of shape [${p.shape.join(', ')}]`);
    }
  });
}

/** Frees the gradients of `params`. */
export function zeroGrad(params: Iterable<Tensor>): void {
  if (typeof (params as { [Symbol.iterator]?: unknown } | null)?.[Symbol.iterator] !== 'function') throw new TypeError(`zeroGrad: expected an iterable of tensors (an array of parameters), got ${params === null ? 'null' : typeof params}`);
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}
