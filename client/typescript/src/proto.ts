/**
 * Loads interest.v1 (and grpc.health.v1) from the .proto files at run time with
 * @grpc/proto-loader: the repository's `protos/` directory is the only source of truth, so there
 * is no generated JavaScript to drift from it. The TypeScript types under `./generated` come from
 * the same files (`npm run gen`, part of `npm run build`) with the same loader options.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

import type { ProtoGrpcType as HealthProto } from './generated/health';
import type { ProtoGrpcType as InterestProto } from './generated/interest';

/** Must match the flags of `proto-loader-gen-types` in package.json ("gen"). */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false, // camelCase field names: user_id -> userId
  longs: Number, // int64 as number: versions, counts and epoch milliseconds stay far below 2^53
  enums: String, // enum values as their names: 'ACK_STATUS_APPLIED'
  defaults: true, // unset scalars read as their zero value
  oneofs: true, // proto3 `optional` fields: presence is visible
};

export const INTEREST_PROTO = 'interest/v1/interest.proto';
export const HEALTH_PROTO = 'grpc/health/v1/health.proto';

export type Protos = InterestProto & HealthProto;

/** The package root (the directory holding this package's package.json), from src/ or dist/src/. */
export function packageRoot(start: string = __dirname): string {
  let dir = start;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'protos'))) {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`cannot find the client package root above ${start}`);
    }
    dir = parent;
  }
}

/**
 * Where interest/v1/interest.proto lives: `protoDir` if given, else $INTEREST_PROTO_DIR, else the
 * repository's `protos/` two levels above the package (client/typescript -> repo root).
 */
export function resolveProtoDir(protoDir?: string): string {
  const dir = protoDir ?? process.env.INTEREST_PROTO_DIR ?? path.resolve(packageRoot(), '..', '..', 'protos');
  if (!fs.existsSync(path.join(dir, INTEREST_PROTO))) {
    throw new Error(
      `${INTEREST_PROTO} not found under ${dir}; pass protoDir or set INTEREST_PROTO_DIR`,
    );
  }
  return dir;
}

const cache = new Map<string, Protos>();

/** The loaded packages (service constructors and definitions), cached per proto directory. */
export function loadProtos(protoDir?: string): Protos {
  const dir = resolveProtoDir(protoDir);
  let protos = cache.get(dir);
  if (protos === undefined) {
    const definition = protoLoader.loadSync([INTEREST_PROTO, HEALTH_PROTO], {
      ...LOADER_OPTIONS,
      includeDirs: [dir, path.join(packageRoot(), 'protos')],
    });
    protos = grpc.loadPackageDefinition(definition) as unknown as Protos;
    cache.set(dir, protos);
  }
  return protos;
}
