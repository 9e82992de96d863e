// The tree walker's `skipFileStats` mode (the files source's archive worker uses it): regular files
// found in directories come without stats, in the same order, and everything else is unchanged.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type WalkEvent, walkTree } from '../../src/pipeline/walk.js';
import { makeTempDir } from '../helpers/tree.js';

/** One line per event: `entry <type> <name>`, `file <name>` or `warning <text>`. */
function describeEvents(events: Iterable<WalkEvent>): string[] {
  const lines: string[] = [];
  for (const event of events) {
    if (event.warning !== undefined) lines.push(`warning ${event.warning}`);
    else if (event.file !== undefined) lines.push(`file ${event.file.name}`);
    else lines.push(`entry ${kindOf(event.entry.stats)} ${event.entry.name}`);
  }
  return lines;
}

function kindOf(stats: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): string {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  return 'other';
}

describe('walkTree with skipFileStats', () => {
  let work: string;
  let root: string;
  let single: string;

  before(async () => {
    work = await makeTempDir();
    root = join(work, 'tree');
    await mkdir(join(root, 'b-dir', 'inner'), { recursive: true });
    await writeFile(join(root, 'a.txt'), 'a\n');
    await writeFile(join(root, 'b-dir', 'c.txt'), 'c\n');
    await writeFile(join(root, 'b-dir', 'inner', 'd.txt'), 'd\n');
    await writeFile(join(root, 'skip.log'), 'excluded\n');
    await symlink('a.txt', join(root, 'link'));
    execFileSync('mkfifo', [join(root, 'pipe')]);
    single = join(work, 'single.conf');
    await writeFile(single, 'a configured file\n');
  });

  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('regular files in directories come as file events, in the same order; everything else as entries', () => {
    const options = { paths: [root, single], exclude: ['*.log'], oneFileSystem: false };
    const looked = describeEvents(walkTree(options));
    const skipped = describeEvents(walkTree({ ...options, skipFileStats: true }));
    const name = (path: string) => path.slice(1);
    assert.deepEqual(looked, [
      `entry file ${name(single)}`,
      `entry directory ${name(root)}`,
      `entry file ${name(join(root, 'a.txt'))}`,
      `entry directory ${name(join(root, 'b-dir'))}`,
      `entry file ${name(join(root, 'b-dir', 'c.txt'))}`,
      `entry directory ${name(join(root, 'b-dir', 'inner'))}`,
      `entry file ${name(join(root, 'b-dir', 'inner', 'd.txt'))}`,
      `entry symlink ${name(join(root, 'link'))}`,
      `entry other ${name(join(root, 'pipe'))}`,
    ]);
    // Same walk, same order; only files inside directories lose their stats (a configured file keeps them).
    assert.deepEqual(
      skipped,
      looked.map((line) =>
        line.startsWith('entry file ') && line !== looked[0] ? line.replace('entry file', 'file') : line,
      ),
    );
  });

  test('file events carry the absolute path and the archive name relative to base', () => {
    const events = [...walkTree({ paths: [root], exclude: [], oneFileSystem: false, base: work, skipFileStats: true })];
    const files = events.flatMap((event) => (event.file ? [event.file] : []));
    assert.deepEqual(files, [
      { path: join(root, 'a.txt'), name: 'tree/a.txt' },
      { path: join(root, 'b-dir', 'c.txt'), name: 'tree/b-dir/c.txt' },
      { path: join(root, 'b-dir', 'inner', 'd.txt'), name: 'tree/b-dir/inner/d.txt' },
      { path: join(root, 'skip.log'), name: 'tree/skip.log' },
    ]);
  });
});
