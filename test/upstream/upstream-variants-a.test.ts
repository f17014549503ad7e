import t from 'tap'
import type { ProfileName } from '../../dist/emulator/index.js'
import { coreScenarios } from '../fixtures/variants.js'

// The core scenarios against readings of the Chat API that public evidence allows (see test/fixtures/variants.ts).
const VARIANTS: ProfileName[][] = [[], ['no-hold'], ['timeout-408'], ['exclusive-ts'], ['no-hold', 'exclusive-ts']]

t.jobs = 6
for (const profiles of VARIANTS) coreScenarios(t, profiles)
