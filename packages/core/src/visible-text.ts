/**
 * Characters that break a line or reorder what follows it when shown: C0 and C1 controls (NEL,
 * U+0085, is a line break to many viewers), the line and paragraph separators U+2028/U+2029, and
 * the bidirectional marks, embeddings, overrides and isolates (U+061C, U+200E/F, U+202A–E,
 * U+2066–9; "Trojan Source", CVE-2021-42574).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/**
 * `text` with each character of {@link INVISIBLE} written as a `\uXXXX` escape: for text a caller
 * controls (a path parameter, a field name, a header) echoed in an error message or a log line,
 * so it can neither forge a line nor hide what the message says. Other text is unchanged.
 */
export function visibleText(text: string): string {
  return text.replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
