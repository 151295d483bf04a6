import { readFileSync } from 'node:fs';

/**
 * What Linux's /proc says about another process of the test: its resident memory, and the TCP
 * connections it serves on a port. Tests that measure a spawned service read these rather than
 * trusting the service's own account of itself.
 */

/** Resident set size of process `pid` in bytes (`VmRSS` of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * The established IPv4 connections whose local port is `port` (the server's side of each), and the
 * bytes that arrived on them and the server has not read yet (`rx_queue` of /proc/net/tcp).
 */
export function servedConnections(port: number): { sockets: number; unread: number } {
  let sockets = 0;
  let unread = 0;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    const localPort = Number.parseInt(f[1]!.split(':')[1]!, 16);
    // st 01: ESTABLISHED.
    if (localPort !== port || f[3] !== '01') continue;
    sockets++;
    unread += Number.parseInt(f[4]!.split(':')[1]!, 16);
  }
  return { sockets, unread };
}
