// Replacing a small file so that readers see the old one or the new one, never half of either:
// a temporary beside it (same filesystem), fsync, then rename over it. The temporary's name starts
// with a dot and ends in .tmp, so collectors that read *.prom or *.timer ignore it.
import { randomBytes } from 'node:crypto';
import { chmod, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Writes `text` to `path` atomically with exactly `mode` (the umask does not apply). */
export async function writeFileAtomically(path: string, text: string, mode: number): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const file = await open(temp, 'wx', mode);
    try {
      await file.writeFile(text, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await chmod(temp, mode);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => {});
    throw error;
  }
}
