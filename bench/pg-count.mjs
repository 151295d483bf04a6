// Preloaded into a benchmark's `portalis serve` (NODE_OPTIONS=--import): counts the statements the
// process sends to PostgreSQL, i.e. its database round trips, through every path (knex, pools,
// LISTEN). node-postgres sends each `Client#query` as one exchange with the server (its simple or
// extended protocol messages are written together and answered by one ReadyForQuery:
// https://node-postgres.com/features/queries, https://www.postgresql.org/docs/current/protocol-flow.html).
// The ESM entry of `pg` re-exports the CommonJS classes, so patching the prototype through
// require reaches knex's client and the store's own pools alike. On SIGUSR2 the process prints
// `pg-queries <count>` on stdout for the benchmark to read; nothing else changes.
import { createRequire } from 'node:module';

const require = createRequire(`${process.cwd()}/package.json`);
const { Client } = require('pg');
const query = Client.prototype.query;
let count = 0;
Client.prototype.query = function countedQuery(...args) {
  count++;
  return query.apply(this, args);
};
process.on('SIGUSR2', () => process.stdout.write(`\npg-queries ${count}\n`));
