export interface HandlerResult {
  status: number;
  /** JSON, or with `contentType` set the text/bytes sent as they are. */
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

/**
 * The answer of a request that waits (the agent's long poll, up to a minute): the handler has
 * read and checked the request and returns this at once; the pipeline calls `later` once its
 * `dispatch` has returned. A parked poll then holds only its own wait, not the Call with its
 * parsed copies of the request, the validation result and the suspended frames of the handler
 * chain (17.7 → 15.5 KB per parked poll, measured with openapi-backend's Context; bench fanout,
 * dominator tree of heap snapshots at 1,000 pollers). `later` must not keep the Call either.
 */
export interface DeferredResult<R = HandlerResult> {
  later: () => Promise<R>;
}
