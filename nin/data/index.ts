// The data layer: dataset files, registry/download, splits, preprocessing, augmentation, batching.
export * from './formats.ts';
export * from './folder.ts';
export * from './registry.ts';
export * from './split.ts';
export * from './preprocess.ts';
export * from './lcn.ts';
export * from './augment.ts';
export * from './loader.ts';
export { DataFormatError, readDataFile, isGzip, digestFile, writeFileAtomic } from './io.ts';
export { Rng, deriveSeed, permutation } from './rng.ts';
export { symmetricEigen, GramAccumulator, type SymmetricEigen } from './linalg.ts';
export { defaultWorkers } from './parallel.ts';
export { readMatV5, type MatArray } from './matv5.ts';
export { readTarMembers, type TarMember } from './tar.ts';
