import { spawn, spawnSync } from 'node:child_process';

/**
 * Debian's own Python, where python3-os-brick and python3-cinder live; the first `python3` on a
 * developer's PATH is often another one (pyenv, venv) without them.
 */
export const DEBIAN_PYTHON = '/usr/bin/python3';

/**
 * Why the tests needing `modules` cannot run here, or undefined when they can. With
 * PORTALIS_REQUIRE_DEBIAN_PYTHON=1 (CI sets it after installing the packages) a missing module
 * throws instead, so that CI never passes by skipping.
 */
export function debianPythonSkip(modules: string[], packages: string): string | undefined {
  const r = spawnSync(DEBIAN_PYTHON, ['-c', modules.map((m) => `import ${m}`).join('; ')], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status === 0) return undefined;
  const why = `${DEBIAN_PYTHON} cannot import ${modules.join(', ')} (apt-get install ${packages}): ${
    r.error?.message ?? r.stderr.trim().split('\n').pop()
  }`;
  if (process.env.PORTALIS_REQUIRE_DEBIAN_PYTHON === '1') throw new Error(why);
  return why;
}

/** Runs `script args…` under Debian's Python with `input` as JSON on stdin; parses its JSON stdout. */
export function runDebianPython<T>(
  script: string,
  args: string[],
  input: unknown,
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(DEBIAN_PYTHON, [script, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
      timeout: opts.timeoutMs ?? 120_000,
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`${script} ${args.join(' ')} exited ${code ?? signal}:\n${err}${out}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as T);
      } catch (e) {
        reject(new Error(`${script} printed no JSON (${(e as Error).message}):\n${out}\n${err}`));
      }
    });
    child.stdin.end(JSON.stringify(input));
  });
}
