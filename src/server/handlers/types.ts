export interface HandlerResult {
  status: number;
  /** JSON, or with `contentType` set the text/bytes sent as they are. */
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}
