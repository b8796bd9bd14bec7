import { FailpointError, FAILPOINTS, Failpoints } from './failpoints';

describe('Failpoints (CONFIDE_FAILPOINT, test only)', () => {
  it('does nothing when unset', () => {
    const none = new Failpoints(undefined);
    expect(none.armed).toEqual([]);
    for (const point of FAILPOINTS) expect(() => none.hit(point)).not.toThrow();
  });

  it('throws at a point armed with `error`, and only there', () => {
    const fp = new Failpoints('round1.committed:error, result.appended:error');
    expect(fp.armed).toEqual(['round1.committed:error', 'result.appended:error']);
    expect(() => fp.hit('round1.committed')).toThrow(new FailpointError('failpoint round1.committed'));
    expect(() => fp.hit('result.appended')).toThrow(FailpointError);
    expect(() => fp.hit('plan.committed')).not.toThrow();
  });

  it('arms `crash` by default', () => {
    expect(new Failpoints('plan.appended').armed).toEqual(['plan.appended:crash']);
  });

  it.each([
    ['round1.comitted:crash', /unknown point "round1.comitted"/],
    ['round1.committed:explode', /unknown action "explode" for round1.committed/],
  ])('refuses %s, so a typo cannot silently test nothing', (spec, message) => {
    expect(() => new Failpoints(spec)).toThrow(message);
  });
});
