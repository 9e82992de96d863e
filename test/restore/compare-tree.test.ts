// compareWithIndex over a real restore: the files source's archive and index of a tree with every
// kind of entry, extracted for real, then changed on disk or in the index, one thing at a time.
import assert from 'node:assert/strict';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, lchown, lutimes, mkdir, rm, symlink, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../src/lib/log.js';
import { compareWithIndex, type TreeDifference } from '../../src/restore/compare-tree.js';
import { RestoreError } from '../../src/restore/errors.js';
import { type ExtractOptions, type ExtractSummary, extractTar } from '../../src/restore/extract.js';
import { createFilesSource, type IndexEntry } from '../../src/sources/files.js';
import { buildFullTree, type FullTree, makeTempDir } from '../helpers/tree.js';

const never = new AbortController().signal;
const ALL: ExtractOptions = { signal: never, allowDevices: true, preserveOwners: true, allowOutsideSymlinks: true };

async function* each(entries: IndexEntry[]): AsyncGenerator<IndexEntry> {
  yield* entries;
}

function kinds(differences: TreeDifference[]): string[] {
  return differences.map((d) => `${d.path} ${d.kind}`).sort();
}

describe('compareWithIndex', () => {
  let work: string;
  let tree: FullTree;
  let tarPath: string;
  let index: IndexEntry[];
  let prefix: string;
  let count = 0;

  /** Extracts the archive into a fresh directory. */
  async function restore(options: Partial<ExtractOptions> = {}): Promise<{ root: string; summary: ExtractSummary }> {
    const root = join(work, `restored-${++count}`);
    await mkdir(root);
    const summary = await extractTar(createReadStream(tarPath), root, { ...ALL, ...options });
    return { root, summary };
  }

  const at = (relative: string) => `${prefix}/${relative}`;

  before(async () => {
    work = await makeTempDir();
    tree = await buildFullTree();
    prefix = tree.root.slice(1);
    const source = createFilesSource({ name: 'app', paths: [tree.root], exclude: [], oneFileSystem: false });
    tarPath = join(work, 'app.tar');
    for await (const component of source.components({ signal: never, log: silentLogger, scratchDir: work })) {
      const lines: string[] = [];
      const reading = (async () => {
        for await (const chunk of component.index as Readable) lines.push((chunk as Buffer).toString('utf8'));
      })();
      await pipeline(component.data, createWriteStream(tarPath));
      await reading;
      await component.facts;
      index = lines
        .join('')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as IndexEntry);
    }
  });

  after(async () => {
    await tree?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  test('a faithful restore matches its index, given as entries or as the JSONL stream; the socket is skipped', async () => {
    assert.ok(index.some((entry) => entry.type === 'socket'));
    const { root, summary } = await restore();
    assert.deepEqual(await compareWithIndex(each(index), summary, root), []);
    const jsonl = `${index.map((entry) => JSON.stringify(entry)).join('\n')}\n`;
    assert.deepEqual(await compareWithIndex(Readable.from([Buffer.from(jsonl)]), summary, root), []);
  });

  test('changes made to the restored tree are each named with the path and what differs', async () => {
    const { root, summary } = await restore();
    const disk = (relative: string) => join(root, at(relative));
    await unlink(disk(tree.paths.readme));
    await chmod(disk('data/private.key'), 0o644);
    await truncate(disk('data/size-512.bin'), 100);
    await unlink(disk(tree.paths.relativeLink));
    await symlink('../docs/elsewhere', disk(tree.paths.relativeLink));
    // A hard link broken into a copy.
    await unlink(disk(tree.paths.hardLinks[2] as string));
    await writeFile(disk(tree.paths.hardLinks[2] as string), 'copy');
    await utimes(disk(tree.paths.empty), 1_500_000_000, 1_500_000_000);
    await rm(disk(tree.paths.emptyDir), { recursive: true });
    await writeFile(disk(tree.paths.emptyDir), 'not a directory');
    // Each change is the only one: owners and mtimes the changes above disturbed are put back.
    await lchown(disk(tree.paths.relativeLink), 1234, 5678);
    for (const relative of ['', 'docs', 'data', 'links', 'other', 'data/size-512.bin', tree.paths.relativeLink]) {
      const entry = index.find((e) => e.path === (relative === '' ? prefix : at(relative)));
      const mtime = new Date(entry?.mtime ?? 0);
      await lutimes(disk(relative), mtime, mtime);
    }
    const differences = await compareWithIndex(each(index), summary, root);
    assert.deepEqual(
      kinds(differences),
      [
        `${at('data/private.key')} mode`,
        `${at('data/size-512.bin')} size`,
        `${at(tree.paths.emptyDir)} type`,
        `${at(tree.paths.empty)} mtime`,
        `${at(tree.paths.hardLinks[2] as string)} hardlink`,
        `${at(tree.paths.readme)} missing`,
        `${at(tree.paths.relativeLink)} target`,
      ].sort(),
    );
    const target = differences.find((d) => d.kind === 'target');
    assert.equal(
      target?.problem,
      'link target is ../docs/elsewhere in the restored tree, ../docs/readme.txt in the index',
    );
    const mode = differences.find((d) => d.kind === 'mode');
    assert.deepEqual([mode?.expected, mode?.actual], ['0600', '0644']);
  });

  test('an index that disagrees with the archive: hash, size, owner, device, type, extra and missing entries', async () => {
    const { root, summary } = await restore();
    const changed = index.map((entry) => {
      if (entry.path === at(tree.paths.large)) return { ...entry, sha256: '0'.repeat(64) };
      if (entry.path === at('data/size-511.bin')) return { ...entry, size: 510 };
      if (entry.path === at(tree.paths.owned)) return { ...entry, uid: 1 };
      if (entry.path === at(tree.paths.charDevice)) return { ...entry, devminor: 5 };
      if (entry.path === at(tree.paths.fifo)) return { ...entry, type: 'file' as const };
      return entry;
    });
    const withoutSpace = changed.filter((entry) => entry.path !== at(tree.paths.space));
    const extra: IndexEntry = { ...(index[1] as IndexEntry), path: at('docs/never-restored.txt') };
    const differences = await compareWithIndex(each([...withoutSpace, extra]), summary, root);
    assert.deepEqual(
      kinds(differences),
      [
        `${at('data/size-511.bin')} size`,
        `${at('docs/never-restored.txt')} missing`,
        `${at(tree.paths.charDevice)} device`,
        `${at(tree.paths.fifo)} type`,
        `${at(tree.paths.large)} sha256`,
        `${at(tree.paths.owned)} owner`,
        `${at(tree.paths.space)} unexpected`,
      ].sort(),
    );
    const hash = differences.find((d) => d.kind === 'sha256');
    assert.match(hash?.problem ?? '', /^SHA-256 is [0-9a-f]{64} in the restored tree, 0{64} in the index$/);
    assert.equal(
      differences.find((d) => d.kind === 'type')?.problem,
      'the archive holds a fifo where the index lists a file',
    );
  });

  test('restored without owners: the setuid bit and owners are not expected back', async () => {
    const { root, summary } = await restore({ preserveOwners: false });
    assert.deepEqual(await compareWithIndex(each(index), summary, root), []);
  });

  test('one path: compared alone with `only`; without it, everything else is missing', async () => {
    const only = at('data');
    const { root, summary } = await restore({ only: `/${only}` });
    assert.deepEqual(await compareWithIndex(each(index), summary, root, { only }), []);
    const all = await compareWithIndex(each(index), summary, root);
    assert.ok(all.length > 10);
    assert.ok(all.every((d) => d.kind === 'missing' && !d.path.startsWith(`${only}/`)));
  });

  test('a damaged index line is an error naming the line', async () => {
    const { root, summary } = await restore({ only: at('docs') });
    const text = `${JSON.stringify(index[0])}\n{"path": "broken\n`;
    await assert.rejects(compareWithIndex(Readable.from([text]), summary, root), (error: unknown) => {
      assert.ok(error instanceof RestoreError);
      assert.match(error.message, /index line 2 is not valid JSON/);
      return true;
    });
    await assert.rejects(
      compareWithIndex(Readable.from(['{"path": 1}\n']), summary, root),
      /index line 1 is not an index entry/,
    );
  });
});
