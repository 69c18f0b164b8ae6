/** The typed denial a promise is expected to reject with, for tests that assert its code and reason. */
import { GatewayError } from '../../src/shared/errors.js'

/** The GatewayError `p` rejects with; anything else it rejects with is rethrown, and fulfilling fails. */
export async function denial (p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p
  } catch (err) {
    if (err instanceof GatewayError) return err
    throw err
  }
  throw new Error('expected a denial')
}
