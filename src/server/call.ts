/**
 * What a handler gets: one request, matched, authenticated, checked and validated, with its path
 * parameters, query and body typed by the operation's definition in api-spec/portalis.yaml
 * (the generated `operations`), so a handler reads `c.body.size_gb`, not a cast of its own.
 */
import type { Response } from 'express';
import type { Operation } from 'openapi-backend';
import type { Principal } from './auth.ts';
import type { operations } from './generated/api.ts';
import type { DeferredResult, HandlerResult } from './handlers/types.ts';

export type OperationId = keyof operations;

type Definition<I extends OperationId> = operations[I];
type PathOf<I extends OperationId> =
  Definition<I> extends { parameters: { path: infer P } } ? P : Record<string, never>;
type QueryOf<I extends OperationId> =
  Definition<I> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : Record<string, never>;
type BodyOf<I extends OperationId> =
  Definition<I> extends {
    requestBody: { content: { 'application/json': infer B } };
  }
    ? B
    : undefined;

export interface Call<I extends OperationId = OperationId> {
  operation: Operation;
  /** Percent-decoded, UUIDs lower-cased (normalize.ts). */
  params: PathOf<I>;
  /** Coerced to the schema's types (`?wait=5` is the number 5). */
  query: QueryOf<I>;
  body: BodyOf<I>;
  /** Who asks; null for the operations without a token (`security: []`). */
  principal: Principal | null;
  /** For a long poll to see its client hang up; nothing else writes to it. */
  res: Pick<Response, 'on'>;
}

export type Handler<I extends OperationId> = (c: Call<I>) => Promise<HandlerResult | DeferredResult>;

/** Handlers of operations `I`, each typed by its own operation. */
export type Handlers<I extends OperationId> = { [K in I]: Handler<K> };
