//! A bounds-checking walk over a netCDF-3 header, run before `netcdf3` parses it.
//!
//! netcdf3 0.6 allocates vectors sized by header counts before it checks them against
//! the data, so a corrupt count such as 2^31 dimension ids requests gigabytes. This walk
//! rejects any count or length that cannot fit in the bytes that follow, and any
//! variable whose size overflows, before that happens. It also returns where the
//! declared data ends, so that a truncated file is reported before any data is read.

/// Outcome of a walk over a header prefix.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Valid(DataEnd),
    /// The prefix ended inside the header; retry with more of the file.
    NeedMore,
    /// The whole file ended inside the header.
    Truncated(String),
    Invalid(String),
}

/// The smallest file length that contains every variable's data, and the variable
/// whose data ends there. Padding after the last value is not counted, so a valid file is
/// never shorter than `bytes`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct DataEnd {
    pub bytes: u64,
    pub variable: String,
}

/// The byte range of one variable's data, as the header declares it.
struct VariableExtent {
    name: String,
    begin: u64,
    /// Bytes of the whole variable, or of one record for a record variable.
    size: u64,
    is_record: bool,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Whether `bytes` is the whole file, so running out is an error, not NeedMore.
    complete: bool,
}

enum Stop {
    NeedMore,
    Truncated(String),
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
                Stop::Truncated(format!(
                    "the header needs {n} more bytes at byte {} but the file has only {} bytes",
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
        Ok(end) => HeaderCheck::Valid(end),
        Err(Stop::NeedMore) => HeaderCheck::NeedMore,
        Err(Stop::Truncated(detail)) => HeaderCheck::Truncated(detail),
        Err(Stop::Invalid(detail)) => HeaderCheck::Invalid(detail),
    }
}

fn walk(c: &mut Cursor<'_>) -> Step<DataEnd> {
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
    let variables = list(c, 0x0B, "variable", 16, |c| {
        variable(c, &dims, numrecs, offset_size)
    })?;
    Ok(data_end(&variables, numrecs))
}

/// The `numrecs` value of a file still being written ("streaming"), whose record count
/// is unknown.
const STREAMING_NUMRECS: u64 = 0xFFFF_FFFF;

/// Finds where the last variable's data ends. Records are laid out one after another,
/// each holding every record variable, so record `numrecs - 1` of a variable starts
/// `numrecs - 1` record sizes after its `begin`.
fn data_end(variables: &[VariableExtent], numrecs: u64) -> DataEnd {
    // Without padding, so this is at most the true record size.
    let record_size: u64 = variables
        .iter()
        .filter(|v| v.is_record)
        .map(|v| v.size)
        .fold(0, u64::saturating_add);
    let mut end = DataEnd::default();
    for var in variables {
        let var_end = if !var.is_record {
            var.begin.saturating_add(var.size)
        } else if numrecs == 0 || numrecs == STREAMING_NUMRECS {
            continue;
        } else {
            var.begin
                .saturating_add((numrecs - 1).saturating_mul(record_size))
                .saturating_add(var.size)
        };
        if var_end > end.bytes {
            end = DataEnd {
                bytes: var_end,
                variable: var.name.clone(),
            };
        }
    }
    end
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

fn variable(
    c: &mut Cursor<'_>,
    dims: &[u64],
    numrecs: u64,
    offset_size: usize,
) -> Step<VariableExtent> {
    let name_len = c.count("variable name", 1)?;
    let name_bytes = c.take(name_len + (4 - name_len % 4) % 4)?;
    let name = String::from_utf8_lossy(&name_bytes[..name_len]).into_owned();
    let ndims = c.count("dimension id", 4)?;
    let mut cells: u64 = 1;
    let mut record_cells: u64 = 1;
    let mut is_record = false;
    for k in 0..ndims {
        let id = c.u32()? as usize;
        let len = *dims.get(id).ok_or_else(|| {
            Stop::Invalid(format!("dimension id {id} of {} dimensions", dims.len()))
        })?;
        // Length 0 is the record dimension, which has `numrecs` entries. Only the
        // first dimension may be the record dimension.
        if len == 0 && k == 0 {
            is_record = true;
        } else {
            record_cells = record_cells.saturating_mul(len.max(1));
        }
        let len = if len == 0 { numrecs } else { len };
        cells = cells
            .checked_mul(len.max(1))
            .filter(|&c| c < 1 << 60)
            .ok_or_else(|| Stop::Invalid("variable size overflows".into()))?;
    }
    list(c, 0x0C, "variable attribute", 12, attribute)?;
    let size = type_size(c.u32()?)? as u64;
    let bytes = cells
        .checked_mul(size)
        .filter(|&b| b < 1 << 60)
        .ok_or_else(|| Stop::Invalid("variable size overflows".into()))?;
    c.u32()?; // vsize
    let begin = c.take(offset_size)?;
    let begin = begin.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Ok(VariableExtent {
        name,
        begin,
        size: if is_record {
            record_cells.saturating_mul(size)
        } else {
            bytes
        },
        is_record,
    })
}
