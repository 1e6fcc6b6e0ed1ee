//! A bounds-checking walk over a netCDF-3 header, run before `netcdf3` parses it.
//!
//! netcdf3 0.6 allocates vectors sized by header counts before it checks them against
//! the data, so a corrupt count such as 2^31 dimension ids requests gigabytes. This walk
//! rejects any count or length that cannot fit in the bytes that follow, and any
//! variable whose size overflows, before that happens.

/// Outcome of a walk over a header prefix.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Valid,
    /// The prefix ended inside the header; retry with more of the file.
    NeedMore,
    Invalid(String),
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Whether `bytes` is the whole file, so running out is an error, not NeedMore.
    complete: bool,
}

enum Stop {
    NeedMore,
    Invalid(String),
}

type Step<T> = Result<T, Stop>;

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Step<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(Stop::Invalid("length overflows".into()))?;
        if end > self.bytes.len() {
            return Err(if self.complete {
                Stop::Invalid(format!(
                    "header needs {n} bytes at offset {} but the file has {}",
                    self.pos,
                    self.bytes.len()
                ))
            } else {
                Stop::NeedMore
            });
        }
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Step<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a count of items of at least `min_size` bytes each, which must fit in the
    /// bytes that follow.
    fn count(&mut self, what: &str, min_size: usize) -> Step<usize> {
        let n = self.u32()? as usize;
        let remaining = self.bytes.len() - self.pos;
        if self.complete && n.saturating_mul(min_size) > remaining {
            return Err(Stop::Invalid(format!(
                "{what} count {n} cannot fit in the {remaining} bytes that follow"
            )));
        }
        if !self.complete && n.saturating_mul(min_size) > remaining {
            return Err(Stop::NeedMore);
        }
        Ok(n)
    }

    /// Skips a length-prefixed string of `element_size`-byte items, padded to 4 bytes.
    fn padded(&mut self, what: &str, element_size: usize) -> Step<()> {
        let n = self.count(what, element_size)?;
        let bytes = n * element_size;
        self.take(bytes + (4 - bytes % 4) % 4)?;
        Ok(())
    }
}

/// Walks `bytes` (a prefix of the file, or the whole file when `complete`).
pub(crate) fn check_header(bytes: &[u8], complete: bool) -> HeaderCheck {
    let mut cursor = Cursor {
        bytes,
        pos: 0,
        complete,
    };
    match walk(&mut cursor) {
        Ok(()) => HeaderCheck::Valid,
        Err(Stop::NeedMore) => HeaderCheck::NeedMore,
        Err(Stop::Invalid(detail)) => HeaderCheck::Invalid(detail),
    }
}

fn walk(c: &mut Cursor<'_>) -> Step<()> {
    let magic = c.take(4)?;
    let offset_size = match magic {
        b"CDF\x01" => 4,
        b"CDF\x02" => 8,
        _ => {
            return Err(Stop::Invalid(
                "not a netCDF-3 classic or 64-bit offset file".into(),
            ));
        }
    };
    let numrecs = u64::from(c.u32()?);
    let dims = list(c, 0x0A, "dimension", 8, |c| {
        c.padded("dimension name", 1)?;
        Ok(u64::from(c.u32()?))
    })?;
    list(c, 0x0C, "global attribute", 12, attribute)?;
    list(c, 0x0B, "variable", 16, |c| {
        variable(c, &dims, numrecs, offset_size)
    })?;
    Ok(())
}

/// Walks a tagged list: `tag count items`, or the ABSENT marker (two zero words).
fn list<T>(
    c: &mut Cursor<'_>,
    tag: u32,
    what: &str,
    min_item_size: usize,
    mut item: impl FnMut(&mut Cursor<'_>) -> Step<T>,
) -> Step<Vec<T>> {
    let found = c.u32()?;
    if found != 0 && found != tag {
        return Err(Stop::Invalid(format!("invalid {what} list tag {found:#x}")));
    }
    let n = c.count(what, min_item_size)?;
    if found == 0 && n != 0 {
        return Err(Stop::Invalid(format!("absent {what} list with count {n}")));
    }
    (0..n).map(|_| item(c)).collect()
}

fn type_size(nc_type: u32) -> Step<usize> {
    match nc_type {
        1 | 2 => Ok(1),
        3 => Ok(2),
        4 | 5 => Ok(4),
        6 => Ok(8),
        other => Err(Stop::Invalid(format!("invalid data type {other}"))),
    }
}

fn attribute(c: &mut Cursor<'_>) -> Step<()> {
    c.padded("attribute name", 1)?;
    let size = type_size(c.u32()?)?;
    c.padded("attribute values", size)
}

fn variable(c: &mut Cursor<'_>, dims: &[u64], numrecs: u64, offset_size: usize) -> Step<()> {
    c.padded("variable name", 1)?;
    let ndims = c.count("dimension id", 4)?;
    let mut cells: u64 = 1;
    for _ in 0..ndims {
        let id = c.u32()? as usize;
        let len = *dims.get(id).ok_or_else(|| {
            Stop::Invalid(format!("dimension id {id} of {} dimensions", dims.len()))
        })?;
        // Length 0 is the record dimension, which has `numrecs` entries.
        let len = if len == 0 { numrecs } else { len };
        cells = cells
            .checked_mul(len.max(1))
            .filter(|&c| c < 1 << 60)
            .ok_or_else(|| Stop::Invalid("variable size overflows".into()))?;
    }
    list(c, 0x0C, "variable attribute", 12, attribute)?;
    let size = type_size(c.u32()?)? as u64;
    cells
        .checked_mul(size)
        .filter(|&b| b < 1 << 60)
        .ok_or_else(|| Stop::Invalid("variable size overflows".into()))?;
    c.u32()?; // vsize
    c.take(offset_size)?; // begin
    Ok(())
}
