/**
 * Answers that may arrive out of order: only the answer to the latest request counts.
 *
 * A panel refreshes on a timer and after the user's actions, so two of its requests can be in
 * flight at once, and the older answer (from before a sink was created, say) can arrive last;
 * shown, it would take back what the newer one showed.
 */

/** What {@link Latest.of} resolves to for an answer a later request has made stale. */
export const STALE = Symbol("stale");

export class Latest {
  constructor() {
    this.asked = 0;
  }

  /**
   * Await `answer`, the answer to a request made just now.
   * @template T
   * @param {Promise<T>} answer
   * @returns {Promise<T | typeof STALE>} its value, or STALE when another request was made since
   *   (then its failure is dropped too); rejects as `answer` does while it is the latest
   */
  async of(answer) {
    const mine = ++this.asked;
    try {
      const value = await answer;
      return mine === this.asked ? value : STALE;
    } catch (err) {
      if (mine === this.asked) throw err;
      return STALE;
    }
  }
}
