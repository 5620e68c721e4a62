import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCANNED = ['src', 'tools', 'test', 'bench', 'bin'];
const SELF = relative(ROOT, fileURLToPath(import.meta.url));

/*
 * A citation is `docs/<file>.md` followed by section numbers (`§4`, `§9.7`, `§1–2`, `§2, §6`) or
 * by a quoted section name (`docs/architecture.md, "Signature first"`). This file is skipped by the
 * scan: its own examples are made up.
 */
const SECTION = String.raw`§\d+(?:\.\d+)?(?:[–-]\d+(?:\.\d+)?)?`;
const CITATION = new RegExp(String.raw`docs/([a-z0-9-]+\.md)((?:(?:,\s*|\s+)${SECTION})*)(?:,\s*"([^"]+)")?`, 'g');
/** Documents that are not in the repository: the team's own notes. */
const OUTSIDE = /(?<![\w/])stream-api\.md|design\.md/g;

interface Citation {
  readonly where: string;
  /** Offset of the citation in the text it was found in. */
  readonly index: number;
  readonly file: string;
  readonly sections: readonly string[];
  readonly name: string | undefined;
}

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    // Dot folders (bench/.tmp) hold generated copies, not sources.
    if (entry.name.startsWith('.') || entry.name === 'node_modules') return [];
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|js|cjs|mjs)$/.test(entry.name) ? [path] : [];
  });
}

/** `§1–2` → ['1', '2']; `§9.7` → ['9.7']. */
function sectionNumbers(text: string): string[] {
  return [...text.matchAll(/§(\d+(?:\.\d+)?)(?:[–-](\d+(?:\.\d+)?))?/g)].flatMap(([, from, to]) => (to === undefined ? [from!] : [from!, to]));
}

function findCitations(where: string, text: string): Citation[] {
  return [...text.matchAll(CITATION)].map((match) => ({
    where,
    index: match.index,
    file: match[1]!,
    sections: sectionNumbers(match[2] ?? ''),
    name: match[3],
  }));
}

/** What a document offers to cite: numbered headings (`## 4.`, `### 9.2`), numbered items under `## N.` as N.M, and named headings and bold rule names. */
function citableParts(markdown: string): { numbers: Set<string>; names: Set<string> } {
  const numbers = new Set<string>();
  const names = new Set<string>();
  let section: string | undefined;
  for (const line of markdown.split('\n')) {
    const heading = /^#{1,6}\s+(.*?)\s*$/.exec(line);
    if (heading) {
      const numbered = /^(\d+(?:\.\d+)?)\.?\s/.exec(heading[1]!);
      section = numbered?.[1];
      if (numbered) numbers.add(numbered[1]!);
      names.add(heading[1]!.replace(/^\d+(?:\.\d+)?\.?\s+/, '').toLowerCase());
      continue;
    }
    const item = /^(\d+)\.\s/.exec(line);
    if (item && section !== undefined && !section.includes('.')) numbers.add(`${section}.${item[1]}`);
    for (const [, bold] of line.matchAll(/\*\*([^*]+?)\.?\*\*/g)) names.add(bold!.toLowerCase());
  }
  return { numbers, names };
}

/** Every citation that names a missing document or a section the document does not have. */
function brokenCitations(citations: readonly Citation[], readDoc: (file: string) => string | undefined): string[] {
  const broken: string[] = [];
  for (const citation of citations) {
    const markdown = readDoc(citation.file);
    if (markdown === undefined) {
      broken.push(`${citation.where}: docs/${citation.file} does not exist`);
      continue;
    }
    const { numbers, names } = citableParts(markdown);
    for (const section of citation.sections) {
      if (!numbers.has(section)) broken.push(`${citation.where}: docs/${citation.file} has no section ${section}`);
    }
    if (citation.name !== undefined && !names.has(citation.name.toLowerCase())) {
      broken.push(`${citation.where}: docs/${citation.file} has no section "${citation.name}"`);
    }
  }
  return broken;
}

function readDoc(file: string): string | undefined {
  const path = join(ROOT, 'docs', file);
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

function scan(): { citations: Citation[]; outside: string[] } {
  const citations: Citation[] = [];
  const outside: string[] = [];
  for (const path of SCANNED.flatMap((dir) => sourceFiles(join(ROOT, dir)))) {
    const where = relative(ROOT, path);
    if (where === SELF) continue;
    const lines = readFileSync(path, 'utf8').split('\n');
    // Line by line so a failure names the line. A citation wrapped onto the next comment line is
    // read on with that line's text (its comment marker dropped), and counted on the line it starts.
    lines.forEach((line, index) => {
      const at = `${where}:${index + 1}`;
      const next = (lines[index + 1] ?? '').replace(/^\s*(\*|\/\/)\s?/, '');
      citations.push(...findCitations(at, `${line} ${next}`).filter((citation) => citation.index < line.length));
      for (const [match] of line.matchAll(OUTSIDE)) outside.push(`${at}: ${match}`);
    });
  }
  return { citations, outside };
}

describe('citations of docs/', () => {
  const { citations, outside } = scan();

  it('name a document and a section that exist', () => {
    // Comments cite the Stream facts by section; an empty scan would mean the pattern broke.
    expect(citations.filter((c) => c.file === 'stream-api.md' && c.sections.length > 0).length).toBeGreaterThan(40);
    expect(brokenCitations(citations, readDoc)).toEqual([]);
  });

  it('never point at a document outside the repository', () => {
    expect(outside).toEqual([]);
  });

  it('the checker reports a broken citation (so the checks above can fail)', () => {
    const doc = '# T\n\n## 1. One\n\n- **A rule.** text\n\n## 9. Open\n\n1. first\n2. second\n';
    const read = (file: string) => (file === 't.md' ? doc : undefined);
    const cite = (text: string) => brokenCitations(findCitations('x', text), read);
    expect(cite('(docs/t.md §1, §9.2; docs/t.md, "A rule")')).toEqual([]);
    expect(cite('(docs/t.md §1–9)')).toEqual([]);
    expect(cite('(docs/t.md §2)')).toEqual(['x: docs/t.md has no section 2']);
    expect(cite('(docs/t.md §9.3)')).toEqual(['x: docs/t.md has no section 9.3']);
    expect(cite('(docs/t.md §1–3)')).toEqual(['x: docs/t.md has no section 3']);
    expect(cite('(docs/t.md, "No such rule")')).toEqual(['x: docs/t.md has no section "No such rule"']);
    expect(cite('(docs/gone.md §1)')).toEqual(['x: docs/gone.md does not exist']);
    expect([...'see stream-api.md §4, or design.md'.matchAll(OUTSIDE)].map(([m]) => m)).toEqual(['stream-api.md', 'design.md']);
    expect([...'see docs/stream-api.md §4'.matchAll(OUTSIDE)]).toEqual([]);
  });
});
