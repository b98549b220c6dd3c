//! Parsing and printing of sizes, byte values and numbers for the command line.

use std::fmt;

/// A size, number or byte value that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Callers such as clap already name the input; the reason is what they lack.
        f.write_str(self.reason)
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// The text that did not parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

fn error(input: &str, reason: &'static str) -> ParseError {
    ParseError {
        input: input.to_owned(),
        reason,
    }
}

/// Parses an unsigned number in decimal or, with a `0x` prefix, hexadecimal.
pub fn parse_u64(input: &str) -> Result<u64, ParseError> {
    let s = input.trim().replace('_', "");
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse::<u64>(),
    };
    parsed.map_err(|_| error(input, "expected a decimal or 0x-prefixed number"))
}

/// Parses a 32-bit unsigned number (a block id) in decimal or `0x` hexadecimal.
pub fn parse_u32(input: &str) -> Result<u32, ParseError> {
    let value = parse_u64(input)?;
    u32::try_from(value).map_err(|_| error(input, "must fit in 32 bits"))
}

/// Parses a byte size: a number with an optional binary suffix `K`, `M`, `G` or `T`
/// (case-insensitive, optionally followed by `iB` or `B`), such as `4096`, `64K`, `2MiB`, `0x1000`.
pub fn parse_size(input: &str) -> Result<u64, ParseError> {
    let s = input.trim();
    if s.starts_with("0x") || s.starts_with("0X") {
        return parse_u64(s);
    }
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(error(
            input,
            "expected a number, optionally followed by K, M, G or T",
        ));
    }
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(error(input, "unknown suffix (use K, M, G or T)")),
    };
    let value = parse_u64(number)?;
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| error(input, "too large"))
}

/// Parses a byte value: `0..=255` in decimal or `0x` hexadecimal.
pub fn parse_byte(input: &str) -> Result<u8, ParseError> {
    let value = parse_u64(input)?;
    u8::try_from(value).map_err(|_| error(input, "a byte is 0..=255"))
}

/// Formats a byte count for people: `512 B`, `4 KiB`, `1.5 MiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    let scale = 1u64 << (10 * unit);
    if bytes.is_multiple_of(scale) {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        format!("{:.1} {}", bytes as f64 / scale as f64, UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
        assert_eq!(parse_size("3T"), Ok(3 << 40));
        assert_eq!(parse_size(" 8 K "), Ok(8 << 10));
        assert_eq!(parse_size("1_048_576"), Ok(1 << 20));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes() {
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("-4K").is_err());
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        let err = parse_size("16777216T").unwrap_err();
        assert_eq!(err.to_string(), "too large");
        assert_eq!(err.input(), "16777216T");
    }

    #[test]
    fn numbers_and_bytes() {
        assert_eq!(parse_u64("42"), Ok(42));
        assert_eq!(parse_u64("0xff"), Ok(255));
        assert_eq!(parse_u64("0XFF"), Ok(255));
        assert!(parse_u64("0xg").is_err());
        assert_eq!(parse_u32("0x10"), Ok(16));
        assert!(parse_u32("4294967296").is_err());
        assert_eq!(parse_byte("0xa5"), Ok(0xa5));
        assert_eq!(parse_byte("255"), Ok(255));
        assert!(parse_byte("256").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1024), "1 KiB");
        assert_eq!(format_size(4096), "4 KiB");
        assert_eq!(format_size(1536 << 10), "1.5 MiB");
        assert_eq!(format_size(2 << 30), "2 GiB");
        assert_eq!(format_size(5 << 40), "5 TiB");
        assert_eq!(format_size(4097), "4.0 KiB");
        assert_eq!(format_size(u64::MAX), "16777216.0 TiB");
    }
}
