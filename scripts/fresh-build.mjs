/* global URL, process */
// Run by tap before any test file (.taprc `before`). The tests run the
// built bridge and SDK (dist/), as users do. `npm test` builds first; a test
// file run on its own after an edit would otherwise run the old build, so
// every file older than its source is transpiled again here (no type check:
// the build and `npm run typecheck` do that). A missing dist/ means no build
// at all: that one is left to `npm run build`, which writes the declarations too.
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { sources } from './sources.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const trees = [['src', 'dist'], ['packages/client/src', 'packages/client/dist']]

let stale = 0
for (const [src, out] of trees) {
  const from = join(root, src)
  const to = join(root, out)
  if (!existsSync(to)) {
    process.stderr.write(`${out}/ is missing: run \`npm run build\` (or \`npm test\`, which builds first)\n`)
    process.exit(1)
  }
  for (const file of sources(from)) {
    const target = join(to, relative(from, file)).replace(/\.ts$/, '.js')
    if (existsSync(target) && statSync(target).mtimeMs >= statSync(file).mtimeMs) continue
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 }
    })
    mkdirSync(dirname(target), { recursive: true })
    // Renamed into place, so a test process never reads half a file.
    const tmp = `${target}.${process.pid}.tmp`
    writeFileSync(tmp, outputText)
    renameSync(tmp, target)
    stale++
  }
}
if (stale > 0) process.stderr.write(`transpiled ${stale} file(s) newer than their build\n`)
