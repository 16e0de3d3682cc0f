/**
 * The fenced `sh` or `ts` blocks of a Markdown document marked with
 * `<!-- readme-test: name -->` on the line before, in order: the snippets the
 * README tests run or type-check as written.
 */
export function markedBlocks(markdown: string, name: string): string[] {
  const pattern = /<!-- readme-test: ([a-z-]+) -->\n```(?:sh|ts)\n([\s\S]*?)\n```/g;
  return [...markdown.matchAll(pattern)].filter((m) => m[1] === name).map((m) => m[2]!);
}
