// The TypeScript sources of a tree (declaration files aside), every folder down: shared by the scripts.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

export function sources (dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name)
    if (d.isDirectory()) return sources(p)
    return d.name.endsWith('.ts') && !d.name.endsWith('.d.ts') ? [p] : []
  })
}
