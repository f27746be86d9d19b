/**
 * POSIX sh quoting for values that end up in commands run on the login node.
 */

/**
 * Quote `value` as one sh word: single quotes, with each `'` written as `'\''`.
 * Inside single quotes sh interprets nothing, so no value can inject a command.
 * Words made only of safe characters are returned as they are, to keep commands readable.
 */
export function shQuote(value: string): string {
  if (value.includes('\0')) {
    throw new Error('a shell word cannot contain a NUL byte');
  }
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) {
    return value;
  }
  return `'${value.replace(/'/g, "'\\''")}'`;
}
