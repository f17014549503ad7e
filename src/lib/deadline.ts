/** What `p` resolves to, or `fallback` once `ms` have passed, whichever comes first; the timer ends either way. */
export async function within<T> (p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<T>((resolve) => { timer = setTimeout(resolve, ms, fallback) })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}
