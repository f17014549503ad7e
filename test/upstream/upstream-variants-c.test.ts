import t from 'tap'
import type { ProfileName } from '../../dist/emulator/index.js'
import { coreScenarios } from '../fixtures/variants.js'

// The core scenarios against readings of the Chat API that public evidence allows (see test/fixtures/variants.ts).
const VARIANTS: ProfileName[][] = [['unscoped-cid'], ['epoch-times'], ['outer-times'], ['untimed-state'], ['unscoped-cid', 'no-hold', 'late-stamps']]

t.jobs = 6
for (const profiles of VARIANTS) coreScenarios(t, profiles)
