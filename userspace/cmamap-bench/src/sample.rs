//! One repeat of one contender at one size: the raw figures, and their CSV row.

use serde::{Deserialize, Serialize};

use crate::contender::Contender;

/// Raw figures of one repeat. `None` is a step the contender does not have (anonymous memory
/// has no separate allocation; `pread-pwrite` neither maps nor touches).
///
/// Its CSV columns are its fields, in this order; an empty cell is `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// One CSV line of `sample`, or of its field names with `header`.
fn csv_line(sample: &Sample, header: bool) -> String {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(header)
        .from_writer(Vec::new());
    // Writing plain numbers and names into memory cannot fail.
    writer.serialize(sample).expect("a sample serializes");
    let bytes = writer.into_inner().expect("memory takes every byte");
    let text = String::from_utf8(bytes).expect("CSV of names and numbers is UTF-8");
    text.lines().next().unwrap_or_default().to_owned()
}

/// The CSV header of [`Sample::to_row`]: the field names.
pub fn header() -> String {
    let any = Sample {
        contender: Contender::DeviceIo,
        size: 0,
        repeat: 0,
        alloc_ns: None,
        mmap_ns: None,
        mmap_faults: None,
        touch_ns: None,
        touch_faults: None,
        copy_bytes: 0,
        write_ns: 0,
        read_ns: 0,
        free_ns: 0,
    };
    csv_line(&any, true)
}

impl Sample {
    /// The CSV row, in [`header`]'s order.
    pub fn to_row(&self) -> String {
        csv_line(self, false)
    }

    /// Parses a row made by [`Sample::to_row`].
    pub fn from_row(row: &str) -> Result<Self, String> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(row.trim().as_bytes())
            .deserialize()
            .next()
            .unwrap_or_else(|| Err(csv::Error::from(std::io::Error::other("empty row"))))
            .map_err(|e| format!("bad row '{row}': {e}"))
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
        assert_eq!(
            header(),
            "contender,size,repeat,alloc_ns,mmap_ns,mmap_faults,touch_ns,touch_faults,\
             copy_bytes,write_ns,read_ns,free_ns"
        );
        assert_eq!(header().split(',').count(), 12);
    }
}
