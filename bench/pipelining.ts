/**
 * Clients that pipeline without reading: 100 sockets without a token, each sending 200
 * `GET /openapi.json` at once and never reading, against `portalis serve` as its own process.
 * Measures the service's resident memory growth (target at most 100 MB; 479 MB before a
 * connection's unanswered requests were bounded) and the slowest `/healthz` meanwhile (target
 * under 1 s). `test/integration/pipelining.test.ts` asserts the same targets.
 */
import { floodUnread, warm } from '../test/support/flood.ts';
import { type Benchmark, startSimAndService } from './support.ts';

export const pipelining: Benchmark = {
  name: 'pipelining',
  description: '100 sockets x 200 pipelined GET /openapi.json nobody reads',
  async run(ctx) {
    const stack = await startSimAndService(ctx.databaseUrl, 'pipelining');
    try {
      await warm(stack.url, ['/openapi.json', '/healthz']);
      const f = await floodUnread(stack.url, stack.service.child.pid!, {
        sockets: 100,
        pipelined: 200,
        request: 'GET /openapi.json HTTP/1.1\r\nHost: portalis\r\n\r\n',
      });
      return [
        { name: 'service RSS before', value: f.baseline / 2 ** 20, unit: 'MB' },
        { name: 'service RSS growth, peak', value: (f.peak - f.baseline) / 2 ** 20, unit: 'MB', target: '<= 100 MB' },
        { name: 'slowest /healthz during the flood', value: f.slowestHealthz, unit: 'ms', target: '< 1000 ms' },
      ];
    } finally {
      await stack.stop();
    }
  },
};
