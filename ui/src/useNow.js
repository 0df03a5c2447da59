// React hook: the current time in ms, refreshed every `periodMs`.
import { useEffect, useState } from 'react';

export function useNow(periodMs = 1000) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), periodMs);
    return () => clearInterval(t);
  }, [periodMs]);
  return now;
}
