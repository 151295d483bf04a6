import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bool, ConfigError, choice, int, invalid, parseSettings, text } from './env.ts';

const TABLE = {
  N: int({ def: 5, min: 1, max: 10, doc: 'a number' }),
  M: int({ min: -1, doc: 'an optional number' }),
  B: bool({ def: false, doc: 'a switch' }),
  C: choice({ def: 'a', choices: ['a', 'b'] as const, doc: 'a choice' }),
  T: text({ parse: (v) => (v.length > 3 ? v : invalid('too short')), doc: 'checked text' }),
  R: text({ required: 'is needed here', doc: 'required text' }),
};

const rejects = (env: Record<string, string>, variable: string, message: RegExp) =>
  assert.throws(
    () => parseSettings(TABLE, { R: 'x', ...env }),
    (e) => e instanceof ConfigError && e.variable === variable && message.test(e.message),
  );

describe('parseSettings: one parser for every program', () => {
  it('unset, empty and blank variables take the default; set ones are trimmed', () => {
    assert.deepEqual(parseSettings(TABLE, { R: ' r ', N: '', B: '   ' }), {
      N: 5,
      M: undefined,
      B: false,
      C: 'a',
      T: undefined,
      R: 'r',
    });
    assert.deepEqual(parseSettings(TABLE, { R: 'r', N: ' 10 ', M: '-1', B: 'YES', C: 'B', T: 'long' }), {
      N: 10,
      M: -1,
      B: true,
      C: 'b',
      T: 'long',
      R: 'r',
    });
  });

  it('a value it cannot take is a ConfigError naming the variable and the value', () => {
    rejects({ N: '11' }, 'N', /^N: must be a whole number between 1 and 10, got "11"$/);
    rejects({ N: '0x5' }, 'N', /got "0x5"/);
    rejects({ N: '1e1' }, 'N', /got "1e1"/);
    rejects({ M: '-2' }, 'M', /between -1 and/);
    rejects({ B: 'maybe' }, 'B', /^B: must be true or false, got "maybe"$/);
    rejects({ C: 'c' }, 'C', /^C: must be one of a, b, got "c"$/);
    rejects({ T: 'ab' }, 'T', /^T: too short$/);
  });

  it('a required setting that is unset or blank names itself', () => {
    assert.throws(
      () => parseSettings(TABLE, { R: '  ' }),
      (e) => e instanceof ConfigError && e.message === 'R: is needed here',
    );
  });
});
