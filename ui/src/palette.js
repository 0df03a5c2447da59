// Stable colours per model name, for legends.
const PALETTE = ['#3fb8af', '#5b9cff', '#b48cff', '#f5a742', '#ff7ab6', '#9bd45a', '#4fd1e8', '#e8d44f'];

export function modelColor(name) {
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}
