import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../config.ts';
import type { Logger } from '../shared/logger.ts';

/** PEM file paths of the service's certificate (chain) and private key. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface ServiceServer {
  server: Server | HttpsServer;
  scheme: 'http' | 'https';
  /**
   * Reads the certificate and key files again and serves them to new connections. Connections
   * already open keep theirs (Node's `server.setSecureContext`), so nothing is dropped. A pair
   * that cannot be read or does not match is refused and the current one stays. No-op over HTTP.
   */
  reloadTls(): Promise<void>;
}

/** Reads and checks the pair; a bad file or a key that does not fit the certificate is a ConfigError. */
async function readPair(files: TlsFiles): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (variable: string, file: string) => {
    try {
      return await readFile(file);
    } catch (e) {
      throw new ConfigError(
        variable,
        `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  };
  const cert = await read('PORTALIS_TLS_CERT', files.certFile);
  const key = await read('PORTALIS_TLS_KEY', files.keyFile);
  try {
    // Fails on unparsable PEM and on a key that does not belong to the certificate.
    createSecureContext({ cert, key });
  } catch (e) {
    throw new ConfigError('PORTALIS_TLS_CERT', `${files.certFile} with ${files.keyFile}: ${(e as Error).message}`);
  }
  return { cert, key };
}

/** The service's HTTP server, or HTTPS when `tls` names a certificate and key. Not yet listening. */
export async function createServiceServer(
  handler: RequestListener,
  tls: TlsFiles | null,
  log: Logger,
): Promise<ServiceServer> {
  if (!tls) return { server: createHttpServer(handler), scheme: 'http', reloadTls: async () => {} };
  const server = createHttpsServer(await readPair(tls), handler);
  return {
    server,
    scheme: 'https',
    async reloadTls() {
      const pair = await readPair(tls);
      server.setSecureContext(pair);
      log.info({ cert: tls.certFile }, 'TLS certificate reloaded');
    },
  };
}
