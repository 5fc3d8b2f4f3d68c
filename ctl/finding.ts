// One line of certsepctl doctor's report: what was checked, what was found, and how to fix it.
export interface Finding {
  level: 'ok' | 'warn' | 'fail';
  check: string;
  detail: string;
  fix?: string;
}
