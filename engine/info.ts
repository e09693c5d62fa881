// Prints the adapter the engine would use, its features and the limits the kernels care about.
// `npm run gpu-info`; exit code 1 (with install help) when no adapter is found.
import { closeGpu, getGpu } from './device.ts';
import { tuningSource } from '../kernels/tuning.ts';
import { checkedMatrixSettings, describeMatrixMode, matrixTile } from '../kernels/gemm-matrix.ts';

try {
  const g = await getGpu();
  console.log(`adapter: ${g.adapterName}`);
  console.log(`kernel style: ${g.style}${g.subgroupSize ? ` (subgroup width ${g.subgroupSize})` : ''}; waiting for the GPU: ${g.poll}`);
  console.log(`features: ${[...g.features].join(', ') || '(none of timestamp-query, subgroups, shader-f16)'}`);
  for (const [k, v] of Object.entries(g.limits)) console.log(`${k}: ${v}`);
  console.log(`tuning table (tiled kernels): ${tuningSource()}`);
  const matrix = checkedMatrixSettings(); // a bad NIN_MATRIX or NIN_MATRIX_TILE: its error, exit 1
  const tile = matrix && matrixTile(matrix);
  console.log(`matrix GEMMs (NIN_MATRIX): ${matrix && tile ? `${describeMatrixMode(matrix)}, tile ${tile.FM}x${tile.FN}x${tile.BK}` : 'off'}`);
  console.log(`adapter features: ${g.adapterFeatures.join(', ')}`);
  const configs = g.subgroupMatrixConfigs.map((c) => `${c.M}×${c.N}×${c.K} ${c.componentType}→${c.resultComponentType}`);
  const unsafe = /(^|\s)enable-dawn-features=\S*allow_unsafe_apis/.test(process.env.NIN_DAWN_FLAGS ?? '');
  const missing = unsafe ? ' (feature not offered, with allow_unsafe_apis on)' : ' (feature not offered; with allow_unsafe_apis some GPUs offer it)';
  console.log(`subgroup-matrix configs: ${configs.join(', ') || 'none'}${g.adapterFeatures.includes('chromium-experimental-subgroup-matrix') ? '' : missing}`);
  closeGpu();
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}
