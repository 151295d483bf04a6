/**
 * What a handler gets: one request, matched, authenticated, checked and validated, with its path
 * parameters, query and body typed by the operation's definition in api-spec/portalis.yaml
 * (the generated `operations`), so a handler reads `c.body.size_gb`, not a cast of its own.
 */
import type { Response } from 'express';
import type { Operation } from 'openapi-backend';
import type { Principal } from './auth.ts';
import type { components, operations } from './generated/api.ts';
import type { DeferredResult } from './handlers/types.ts';
import type { Schema } from './wire.ts';

export type OperationId = keyof operations;

type Definition<I extends OperationId> = operations[I];
type PathOf<I extends OperationId> =
  Definition<I> extends { parameters: { path: infer P } } ? P : Record<string, never>;
type QueryOf<I extends OperationId> =
  Definition<I> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : Record<string, never>;
type HeaderOf<I extends OperationId> =
  Definition<I> extends { parameters: { header?: infer H } } ? NonNullable<H> : Record<string, never>;
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
  /** The header parameters the operation declares (names lower-cased, as Node gives them). */
  headers: Partial<HeaderOf<I>>;
  /** Who asks; null for the operations without a token (`security: []`). */
  principal: Principal | null;
  /** For a long poll to see its client hang up; nothing else writes to it. */
  res: Pick<Response, 'on'>;
}

type Responses<I extends OperationId> = Definition<I>['responses'];
/** The statuses a handler answers with: every response of the operation but the shared error ones (thrown instead). */
type Answered<I extends OperationId> = Extract<
  {
    [S in keyof Responses<I>]: Responses<I>[S] extends components['responses']['Error'] ? never : S;
  }[keyof Responses<I>],
  number
>;
type JsonOf<R> = R extends { content: { 'application/json': infer B } } ? B : null;

/**
 * A handler's answer, held to its operation's responses in the document: a status it lists with
 * that status's JSON body; or bytes with their own content type (the dashboard, the metrics,
 * the document itself); or an error body (the dashboard's own 404s; every other error is
 * thrown, and error-mapper.ts writes it).
 */
export type Reply<I extends OperationId> =
  | { status: Answered<I>; body: JsonOf<Responses<I>[Answered<I>]>; contentType?: undefined; headers?: undefined }
  | BytesReply
  | ErrorReply;

export type BytesReply = {
  status: number;
  body: Buffer | string;
  contentType: string;
  headers?: Record<string, string>;
};
export type ErrorReply = { status: 404; body: Schema<'Error'>; contentType?: undefined; headers?: undefined };

export type Handler<I extends OperationId> = (c: Call<I>) => Promise<Reply<I> | DeferredResult<Reply<I>>>;

/** Handlers of operations `I`, each typed by its own operation. */
export type Handlers<I extends OperationId> = { [K in I]: Handler<K> };
