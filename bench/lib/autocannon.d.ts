// autocannon ships no type declarations; bench/lib/load.ts gives it a typed surface.
declare module 'autocannon' {
  const autocannon: unknown;
  export default autocannon;
}
