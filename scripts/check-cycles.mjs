/* global URL, console, process */
// Fails when a file of src/ or of the SDK's packages/client/src reaches itself through its relative
// imports, type imports included: a cycle of types still ties the modules into one knot. Run by
// `npm run lint`. The two trees meet only through the package's name, never by a relative path.
import { readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'
import { sources } from './sources.mjs'

const root = resolve(dirname(new URL(import.meta.url).pathname), '..')
const trees = ['src', 'packages/client/src']

const files = trees.flatMap((t) => sources(join(root, t)))
const known = new Set(files)
const edges = new Map(files.map((f) => {
  const { importedFiles } = ts.preProcessFile(readFileSync(f, 'utf8'), true, true)
  const targets = importedFiles
    .map((i) => i.fileName)
    .filter((s) => s.startsWith('.'))
    .map((s) => resolve(dirname(f), s.replace(/\.js$/, '.ts')))
    .filter((t) => known.has(t))
  return [f, [...new Set(targets)]]
}))

// Tarjan's strongly connected components: every component of more than one file is a cycle.
let index = 0
const low = new Map()
const order = new Map()
const stack = []
const onStack = new Set()
const cycles = []
function visit (v) {
  order.set(v, index)
  low.set(v, index++)
  stack.push(v)
  onStack.add(v)
  for (const w of edges.get(v)) {
    if (!order.has(w)) {
      visit(w)
      low.set(v, Math.min(low.get(v), low.get(w)))
    } else if (onStack.has(w)) {
      low.set(v, Math.min(low.get(v), order.get(w)))
    }
  }
  if (low.get(v) !== order.get(v)) return
  const part = []
  let w
  do {
    w = stack.pop()
    onStack.delete(w)
    part.push(w)
  } while (w !== v)
  if (part.length > 1 || edges.get(v).includes(v)) cycles.push(part)
}
for (const f of files) if (!order.has(f)) visit(f)

if (cycles.length > 0) {
  for (const c of cycles) console.error(`import cycle: ${c.map((f) => relative(root, f)).sort().join(', ')}`)
  process.exit(1)
}
console.log(`no import cycles among ${files.length} files of ${trees.join(' and ')}`)
