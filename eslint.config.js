// Style is checked, not remembered: neostandard (the style fastify and its plugins use) with TypeScript.
// `npm run lint` runs it with the import-cycle check; `npm test` runs lint first.
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'bench-dist/**', 'test/deploy/schemas/**'] }),
  {
    rules: {
      // Config text is full of `${VAR}` placeholders, which scopegate itself substitutes: they are meant literally.
      'no-template-curly-in-string': 'off',
      // `void promise` marks a promise deliberately not awaited (its rejections are handled inside).
      'no-void': ['error', { allowAsStatement: true }]
    }
  }
]
