//! A deterministic test pattern keyed by a seed and the absolute offset in the block, so that
//! any partial mapping, `pread`, or another process can check any range independently.

use std::fmt;

use crate::rng::splitmix64;

fn word(seed: u64, word_index: u64) -> [u8; 8] {
    splitmix64(seed ^ splitmix64(word_index)).to_le_bytes()
}

/// The pattern byte at `offset` in the block.
pub fn byte_at(seed: u64, offset: u64) -> u8 {
    word(seed, offset / 8)[(offset % 8) as usize]
}

/// Fills `buf`, which holds the block's bytes from `base_offset` on, with the pattern.
pub fn fill(buf: &mut [u8], seed: u64, base_offset: u64) {
    let mut current = word(seed, base_offset / 8);
    for (offset, byte) in (base_offset..).zip(buf.iter_mut()) {
        if offset.is_multiple_of(8) {
            current = word(seed, offset / 8);
        }
        *byte = current[(offset % 8) as usize];
    }
}

/// The pattern for block bytes `base_offset..base_offset + len`.
pub fn generate(len: usize, seed: u64, base_offset: u64) -> Vec<u8> {
    let mut buf = vec![0; len];
    fill(&mut buf, seed, base_offset);
    buf
}

/// The first byte that differs from what was expected, and how many differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Offset in the block of the first differing byte.
    pub offset: u64,
    /// What it should have been.
    pub expected: u8,
    /// What it was.
    pub found: u8,
    /// How many bytes of the range differ.
    pub count: usize,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} byte(s) differ, first at block offset {:#x}: expected {:#04x}, found {:#04x}",
            self.count, self.offset, self.expected, self.found
        )
    }
}

impl std::error::Error for Mismatch {}

fn compare(buf: &[u8], base_offset: u64, expected: impl Fn(u64) -> u8) -> Result<(), Mismatch> {
    let mut first = None;
    let mut count = 0;
    for (i, &found) in buf.iter().enumerate() {
        let offset = base_offset + i as u64;
        let want = expected(offset);
        if found != want {
            count += 1;
            first.get_or_insert((offset, want, found));
        }
    }
    match first {
        None => Ok(()),
        Some((offset, expected, found)) => Err(Mismatch {
            offset,
            expected,
            found,
            count,
        }),
    }
}

/// Checks that `buf` (block bytes from `base_offset` on) holds the pattern.
pub fn check(buf: &[u8], seed: u64, base_offset: u64) -> Result<(), Mismatch> {
    compare(buf, base_offset, |offset| byte_at(seed, offset))
}

/// Checks that every byte of `buf` (block bytes from `base_offset` on) is `value`.
pub fn check_filled(buf: &[u8], value: u8, base_offset: u64) -> Result<(), Mismatch> {
    compare(buf, base_offset, |_| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_ranges_agree_with_the_whole() {
        let whole = generate(3 * 4096, 7, 0);
        let middle = generate(4096, 7, 4096);
        assert_eq!(&whole[4096..8192], &middle[..]);
        let odd = generate(13, 7, 5);
        assert_eq!(&whole[5..18], &odd[..]);
        assert!(check(&whole[100..], 7, 100).is_ok());
        assert_eq!(byte_at(7, 4097), whole[4097]);
    }

    #[test]
    fn seeds_and_pages_differ() {
        let a = generate(8192, 1, 0);
        let b = generate(8192, 2, 0);
        assert_ne!(a, b);
        assert_ne!(&a[..4096], &a[4096..]);
        assert!(a.iter().any(|&x| x != 0));
    }

    #[test]
    fn mismatches_report_first_offset_and_count() {
        let mut buf = generate(64, 3, 4096);
        buf[10] ^= 0xff;
        buf[20] ^= 0x01;
        let mismatch = check(&buf, 3, 4096).unwrap_err();
        assert_eq!(mismatch.offset, 4106);
        assert_eq!(mismatch.count, 2);
        assert_eq!(mismatch.found, mismatch.expected ^ 0xff);
        assert!(mismatch
            .to_string()
            .contains("first at block offset 0x100a"));
    }

    #[test]
    fn filled_check() {
        assert!(check_filled(&[0; 16], 0, 0).is_ok());
        let err = check_filled(&[0, 0, 1], 0, 8).unwrap_err();
        assert_eq!(
            (err.offset, err.expected, err.found, err.count),
            (10, 0, 1, 1)
        );
    }
}
