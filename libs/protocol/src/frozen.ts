/**
 * Values frozen all the way down, which pure functions may then remember results for by identity: a worker process
 * hosting many participants checks a round's shared task parts once for all of them (libs/queue task-refs.ts), and
 * the plan's hash or the evidence's verification is the same for every participant that holds the same frozen object.
 * Only objects frozen by {@link deepFreeze} count (a shallow Object.freeze leaves the arrays inside writable).
 */
const deeplyFrozen = new WeakSet<object>();

/**
 * Freezes a value and everything it holds (plain objects and arrays), and marks it for {@link isDeeplyFrozen}. Typed
 * arrays cannot be frozen and are left as they are: a value holding one is not marked.
 * @returns the value itself
 */
export function deepFreeze<T>(value: T): T {
  freeze(value);
  return value;
}

function freeze(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (deeplyFrozen.has(value)) return true;
  if (ArrayBuffer.isView(value)) return false;
  let whole = true;
  for (const inner of Object.values(value)) whole = freeze(inner) && whole;
  Object.freeze(value);
  if (whole) deeplyFrozen.add(value);
  return whole;
}

/** Whether {@link deepFreeze} froze this object and all it holds (so no one can have changed it since). */
export function isDeeplyFrozen(value: unknown): boolean {
  return value !== null && typeof value === 'object' && deeplyFrozen.has(value);
}

/**
 * `compute(value)`, remembered for a deeply frozen value (by identity, in `memo`), computed afresh for any other.
 */
export function memoFrozen<K extends object, V>(memo: WeakMap<K, V>, value: K, compute: (value: K) => V): V {
  if (!isDeeplyFrozen(value)) return compute(value);
  let known = memo.get(value);
  if (known === undefined) memo.set(value, (known = compute(value)));
  return known;
}
