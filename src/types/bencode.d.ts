declare module 'bencode' {
  type Value = number | Uint8Array | Value[] | { [key: string]: Value };
  interface Bencode {
    encode(value: unknown): Uint8Array;
    decode(data: Uint8Array, start?: number, end?: number): unknown;
    byteLength(value: unknown): number;
  }
  const bencode: Bencode;
  export default bencode;
  export type { Value };
}
