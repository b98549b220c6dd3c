//! One repeat of one contender at one size: the raw figures, and their CSV row.

use crate::contender::Contender;

/// The CSV header of [`Sample::to_row`].
pub const HEADER: &str = "contender,size,repeat,alloc_ns,mmap_ns,mmap_faults,touch_ns,touch_faults,copy_bytes,write_ns,read_ns,free_ns";

/// Raw figures of one repeat. `None` is a step the contender does not have (anonymous memory
/// has no separate allocation; `pread-pwrite` neither maps nor touches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Who ran.
    pub contender: Contender,
    /// Bytes of memory.
    pub size: u64,
    /// Repeat number, from 0.
    pub repeat: u32,
    /// Allocating the memory.
    pub alloc_ns: Option<u64>,
    /// The `mmap` call (with its placement, for `huge`).
    pub mmap_ns: Option<u64>,
    /// Minor faults during `mmap` (`MAP_POPULATE` faults pages in there).
    pub mmap_faults: Option<u64>,
    /// Writing one byte to every page, the first time.
    pub touch_ns: Option<u64>,
    /// Minor faults during that touch.
    pub touch_faults: Option<u64>,
    /// Bytes copied in each direction (the size, repeated so small sizes still take a while).
    pub copy_bytes: u64,
    /// Copying `copy_bytes` in: memcpy into the mapping, or `pwrite`.
    pub write_ns: u64,
    /// Copying `copy_bytes` out: memcpy from the mapping, or `pread`.
    pub read_ns: u64,
    /// `munmap` and free (close the dma-buf, `IOC_FREE`).
    pub free_ns: u64,
}

fn opt(value: Option<u64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn parse_opt(field: &str) -> Result<Option<u64>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    field
        .parse()
        .map(Some)
        .map_err(|_| format!("bad number '{field}'"))
}

fn parse_num(field: &str) -> Result<u64, String> {
    parse_opt(field)?.ok_or_else(|| "missing number".to_string())
}

impl Sample {
    /// The CSV row, in [`HEADER`]'s order.
    pub fn to_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            self.contender,
            self.size,
            self.repeat,
            opt(self.alloc_ns),
            opt(self.mmap_ns),
            opt(self.mmap_faults),
            opt(self.touch_ns),
            opt(self.touch_faults),
            self.copy_bytes,
            self.write_ns,
            self.read_ns,
            self.free_ns
        )
    }

    /// Parses a row made by [`Sample::to_row`].
    pub fn from_row(row: &str) -> Result<Self, String> {
        let fields: Vec<&str> = row.trim().split(',').collect();
        let [contender, size, repeat, alloc, mmap, mmap_faults, touch, touch_faults, bytes, write, read, free] =
            fields[..]
        else {
            return Err(format!("expected 12 fields: '{row}'"));
        };
        let repeat = parse_num(repeat)?;
        Ok(Self {
            contender: contender.parse()?,
            size: parse_num(size)?,
            repeat: u32::try_from(repeat).map_err(|_| format!("bad repeat {repeat}"))?,
            alloc_ns: parse_opt(alloc)?,
            mmap_ns: parse_opt(mmap)?,
            mmap_faults: parse_opt(mmap_faults)?,
            touch_ns: parse_opt(touch)?,
            touch_faults: parse_opt(touch_faults)?,
            copy_bytes: parse_num(bytes)?,
            write_ns: parse_num(write)?,
            read_ns: parse_num(read)?,
            free_ns: parse_num(free)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contender::Kind;

    #[test]
    fn rows_round_trip() {
        let sample = Sample {
            contender: Contender::Cmamap(Kind::Huge),
            size: 64 << 20,
            repeat: 2,
            alloc_ns: Some(1000),
            mmap_ns: Some(20),
            mmap_faults: Some(0),
            touch_ns: Some(300),
            touch_faults: Some(32),
            copy_bytes: 64 << 20,
            write_ns: 5,
            read_ns: 6,
            free_ns: 7,
        };
        assert_eq!(Sample::from_row(&sample.to_row()), Ok(sample.clone()));
        let io = Sample {
            contender: Contender::DeviceIo,
            alloc_ns: None,
            mmap_ns: None,
            mmap_faults: None,
            touch_ns: None,
            touch_faults: None,
            ..sample
        };
        assert_eq!(io.to_row(), "pread-pwrite,67108864,2,,,,,,67108864,5,6,7");
        assert_eq!(Sample::from_row(&io.to_row()), Ok(io));
    }

    #[test]
    fn bad_rows_are_refused() {
        assert!(Sample::from_row("remap,1,2").is_err());
        assert!(Sample::from_row("remap,x,0,,,,,,1,1,1,1").is_err());
        assert!(Sample::from_row("tmpfs,1,0,,,,,,1,1,1,1").is_err());
        assert!(Sample::from_row("remap,1,0,,,,,,1,,1,1").is_err());
    }

    #[test]
    fn the_header_names_every_field() {
        assert_eq!(HEADER.split(',').count(), 12);
    }
}
