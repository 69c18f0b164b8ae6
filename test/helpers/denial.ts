/** The typed error a promise is expected to reject with, for tests that assert its code and reason. */
import { GatewayError } from '../../src/shared/errors.js'

/** The error of class `type` that `p` rejects with; anything else it rejects with is rethrown, and fulfilling fails. */
export async function rejection<E extends Error> (p: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  try {
    await p
  } catch (err) {
    if (err instanceof type) return err
    throw err
  }
  throw new Error(`expected a ${type.name}`)
}

/** The GatewayError (a denial) that `p` rejects with. */
export const denial = (p: Promise<unknown>): Promise<GatewayError> => rejection(p, GatewayError)
