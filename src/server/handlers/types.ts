export interface HandlerResult {
  status: number;
  body: unknown;
}
