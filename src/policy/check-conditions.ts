import type { CompiledCondition, CompiledPolicy, RequestFacts } from '../config/types.js'
import { deny, type GatewayError } from '../shared/errors.js'

/** One condition as it ran, for `scopegate explain`: its label, the value it judged, and its failure (null: held). */
export interface ConditionStep {
  stage: 'condition'
  label: string
  value: unknown
  failure: GatewayError | null
}

/**
 * Conditions rule (docs/policy.md, "Conditions"): every condition must hold, in order; the first that
 * does not answers 403 `insufficient_scope` (or `denyStatus.scope`), with the condition and, for a
 * runtime error, its cause in the log-only detail. A recorder, when given, is told each one.
 */
export function checkConditions (policy: CompiledPolicy, conditions: readonly CompiledCondition[],
  claims: Readonly<Record<string, unknown>>, request: RequestFacts | null, record?: (step: ConditionStep) => void): void {
  for (const condition of conditions) {
    const result = condition.evaluate(claims, request)
    const failure = result.pass
      ? null
      : deny.conditionFailed(policy.denyStatus.scope, 'condition_failed',
        `condition ${condition.label} not met${result.error === undefined ? '' : `: ${result.error}`}`)
    record?.({ stage: 'condition', label: condition.label, value: result.value, failure })
    if (failure !== null) throw failure
  }
}
