/** The longest delay `setTimeout` honours: 2^31 − 1 ms, about 24.8 days. A longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/** Whether `value` is a delay a timer can wait: a number of ms from `min` to MAX_TIMER_MS. */
export function isTimerDelay(value: unknown, min: number): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= min && value <= MAX_TIMER_MS;
}
