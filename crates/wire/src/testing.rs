//! Helpers for the translators' tests: a deterministic generator of broken
//! inputs (no fuzzing dependency needed to show nothing panics) and a
//! reader for the events they write.

/// A 64-bit linear congruential generator: deterministic, good enough to
/// pick mutations.
pub(crate) struct Lcg(u64);

impl Lcg {
    pub(crate) fn new(seed: u64) -> Self {
        Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }

    /// A number below `n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next() % n as u64) as usize
    }
}

/// JSON fragments swapped in for values, to meet every wrong type.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "0",
    "-1",
    "1.5",
    "1e999",
    "18446744073709551615",
    "99999999999999999999999",
    "\"\"",
    "\"x\"",
    "\"data:\"",
    "\"data:image/png;base64,\"",
    "[]",
    "[null]",
    "{}",
    "{\"type\":null}",
    "\"\\ud800\"",
    "\"\u{1F324}\"",
];

/// Every prefix of each seed, then `count` mutants: bytes flipped, values
/// swapped for other types, pieces of seeds spliced, and plain noise.
pub(crate) fn fuzz_bytes(rng: &mut Lcg, seeds: &[&[u8]], count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for seed in seeds {
        for cut in 0..seed.len() {
            out.push(seed[..cut].to_vec());
        }
    }
    for _ in 0..count {
        let seed = seeds[rng.below(seeds.len())];
        let mut v = seed.to_vec();
        match rng.below(5) {
            0 => {
                for _ in 0..=rng.below(4) {
                    let at = rng.below(v.len());
                    if let Some(b) = v.get_mut(at) {
                        *b = (rng.next() & 0xff) as u8;
                    }
                }
            }
            1 | 2 => {
                // Replace what follows a `:` or `[` or `,` with a token.
                for _ in 0..=rng.below(3) {
                    let starts: Vec<usize> = v
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| matches!(b, b':' | b'[' | b','))
                        .map(|(i, _)| i + 1)
                        .collect();
                    if starts.is_empty() {
                        break;
                    }
                    let at = starts[rng.below(starts.len())];
                    let end = v[at..]
                        .iter()
                        .position(|b| matches!(b, b',' | b'}' | b']'))
                        .map_or(v.len(), |p| at + p);
                    let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    v.splice(at..end, token.iter().copied());
                }
            }
            3 => {
                let other = seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = from + rng.below(other.len() - from + 1);
                let at = rng.below(v.len() + 1);
                v.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                v = (0..rng.below(64))
                    .map(|_| (rng.next() & 0xff) as u8)
                    .collect();
            }
        }
        out.push(v);
    }
    out
}

/// The JSON of one `data: {...}\n\n` event.
pub(crate) fn chunk_json(event: &[u8]) -> serde_json::Value {
    let text = std::str::from_utf8(event).expect("utf8");
    let json = text
        .strip_prefix("data: ")
        .and_then(|t| t.strip_suffix("\n\n"))
        .expect("a data event");
    serde_json::from_str(json).expect("json")
}
