// Plain aligned columns for terminals. Values may come from peers (error messages) or the CA, so
// each cell is one printable line: nothing printed may move the cursor or rewrite the screen.
import { printableLine } from './terminal-text.ts';

export function renderTable(header: string[], rows: string[][]): string {
  const cells = [header, ...rows].map((row) => row.map(printableLine));
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}
