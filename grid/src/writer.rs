//! Streaming CF-1.8 netCDF-3 (classic format) writer for forecast output.
//!
//! The file is encoded here rather than through `netcdf3::FileWriter` for two
//! reasons: that writer needs the record count when the header is written, and it
//! borrows its `DataSet` for its whole life, so a writer that outlives the call that
//! created it would have to own both. Writing the classic format directly lets each
//! time step go to disk as it arrives, so memory stays at one step whatever the lead
//! time. The record count in the header is patched by [`CfWriter::finish`].
//!
//! Layout: dimensions `time` (record), optional `member`, `lat`, `lon`. Fixed
//! variables `lat`, `lon`, optional `member`, scalar `forecast_reference_time`. Record
//! variables `time` (hours since init), `lead_time` (hours) and the data variables,
//! `(time, [member,] lat, lon)` f32 with NaN stored as `_FillValue`.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::GridError;
use crate::grid::Grid;

/// Stored in place of NaN: the netCDF default fill for f32 (NC_FILL_FLOAT).
pub const FILL_VALUE_F32: f32 = netcdf3::NC_FILL_F32;

const NC_DIMENSION: u32 = 0x0A;
const NC_VARIABLE: u32 = 0x0B;
const NC_ATTRIBUTE: u32 = 0x0C;
const NC_CHAR: u32 = 2;
const NC_INT: u32 = 4;
const NC_FLOAT: u32 = 5;
const NC_DOUBLE: u32 = 6;

const RESERVED_NAMES: [&str; 6] = [
    "time",
    "lead_time",
    "member",
    "lat",
    "lon",
    "forecast_reference_time",
];

/// Contents of a CF output file, fixed before the first time step.
#[derive(Debug, Clone)]
pub struct CfHeader {
    /// Forecast initialisation time; `time` is stored as hours since it.
    pub init_time: DateTime<Utc>,
    pub grid: Grid,
    /// Number of ensemble members, or None for a deterministic forecast.
    pub members: Option<usize>,
    pub variables: Vec<CfVariable>,
    /// Global string attributes after `Conventions`, such as the model id, weights
    /// hash, input hash and gridcast version.
    pub attributes: Vec<(String, String)>,
}

/// One data variable of the output.
#[derive(Debug, Clone, PartialEq)]
pub struct CfVariable {
    pub name: String,
    pub units: String,
    pub long_name: String,
}

/// A CF netCDF file being written one time step at a time.
///
/// Data goes to `<name>.partial` in the target directory, and [`CfWriter::finish`]
/// renames it, so readers never see a partial file. Dropping the writer without
/// `finish` deletes the partial file.
#[derive(Debug)]
pub struct CfWriter {
    path: PathBuf,
    partial: PathBuf,
    out: Option<BufWriter<File>>,
    /// Values per data variable per step: members * ny * nx.
    cells: usize,
    n_variables: usize,
    steps: u32,
}

impl CfWriter {
    /// Validates the header, creates the partial file and writes the header and
    /// coordinates.
    pub fn create(path: &Path, header: &CfHeader) -> Result<CfWriter, GridError> {
        validate(path, header)?;
        let file_name = path.file_name().ok_or_else(|| GridError::Write {
            path: path.to_owned(),
            detail: "the output path has no file name".to_owned(),
        })?;
        let mut partial_name = file_name.to_owned();
        partial_name.push(".partial");
        let partial = path.with_file_name(partial_name);
        let file = File::create(&partial).map_err(|e| GridError::io(&partial, e))?;
        let mut writer = CfWriter {
            path: path.to_owned(),
            partial,
            out: Some(BufWriter::new(file)),
            cells: header.members.unwrap_or(1) * header.grid.ny() * header.grid.nx(),
            n_variables: header.variables.len(),
            steps: 0,
        };
        let bytes = encode_header_and_fixed_data(header);
        writer.write_bytes(&bytes)?;
        Ok(writer)
    }

    /// Appends one time step. `fields` has one slice per header variable, in header
    /// order, each `[member][lat][lon]` (or `[lat][lon]`) in canonical order.
    pub fn write_step(&mut self, lead_hours: f64, fields: &[&[f32]]) -> Result<(), GridError> {
        if fields.len() != self.n_variables {
            return Err(self.error(format!(
                "write_step got {} fields but the header declares {} variables",
                fields.len(),
                self.n_variables
            )));
        }
        if let Some(bad) = fields.iter().position(|f| f.len() != self.cells) {
            return Err(self.error(format!(
                "field {bad} has {} values; expected members * lat * lon = {}",
                fields[bad].len(),
                self.cells
            )));
        }
        if !lead_hours.is_finite() {
            return Err(self.error(format!("lead time {lead_hours} hours is not finite")));
        }
        let mut record = Vec::with_capacity(16 + 4 * self.cells * fields.len());
        record.extend_from_slice(&lead_hours.to_be_bytes());
        record.extend_from_slice(&lead_hours.to_be_bytes());
        for field in fields {
            for &value in *field {
                let stored = if value.is_nan() {
                    FILL_VALUE_F32
                } else {
                    value
                };
                record.extend_from_slice(&stored.to_be_bytes());
            }
        }
        self.write_bytes(&record)?;
        self.steps += 1;
        Ok(())
    }

    /// Writes the record count, flushes and renames the file to its final path.
    pub fn finish(mut self) -> Result<PathBuf, GridError> {
        let out = self
            .out
            .take()
            .ok_or_else(|| self.error("already finished".into()))?;
        let mut file = out
            .into_inner()
            .map_err(|e| GridError::io(&self.partial, e.into_error()))?;
        let io = |e| GridError::io(&self.partial, e);
        // Bytes 4..8 of a classic file are `numrecs`.
        file.seek(SeekFrom::Start(4)).map_err(io)?;
        file.write_all(&self.steps.to_be_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.partial, &self.path).map_err(io)?;
        Ok(self.path.clone())
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), GridError> {
        let Some(out) = self.out.as_mut() else {
            return Err(self.error("already finished".into()));
        };
        out.write_all(bytes)
            .map_err(|e| GridError::io(&self.partial, e))
    }

    fn error(&self, detail: String) -> GridError {
        GridError::Write {
            path: self.path.clone(),
            detail,
        }
    }
}

impl Drop for CfWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            // Not finished: the partial file must not be mistaken for output.
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

fn validate(path: &Path, header: &CfHeader) -> Result<(), GridError> {
    let fail = |detail: String| {
        Err(GridError::Write {
            path: path.to_owned(),
            detail,
        })
    };
    if header.grid.ny() == 0 || header.grid.nx() == 0 {
        return fail("the grid has no points".into());
    }
    if header.members == Some(0) {
        return fail("members must be at least 1, or None for a deterministic run".into());
    }
    if header.variables.is_empty() {
        return fail("the header declares no variables".into());
    }
    let cells = header.members.unwrap_or(1) * header.grid.ny() * header.grid.nx();
    if cells
        .checked_mul(4)
        .is_none_or(|b| b > u32::MAX as usize - 3)
    {
        return fail(format!(
            "one field of {cells} values exceeds the 4 GiB record limit of netCDF-3"
        ));
    }
    for (i, var) in header.variables.iter().enumerate() {
        if !is_valid_name(&var.name) {
            return fail(format!(
                "variable name {:?} is not a valid netCDF name (letters, digits, _ . - \
                 starting with a letter or _)",
                var.name
            ));
        }
        if RESERVED_NAMES.contains(&var.name.as_str()) {
            return fail(format!("variable name {:?} is a coordinate name", var.name));
        }
        if header.variables[..i].iter().any(|v| v.name == var.name) {
            return fail(format!("variable {:?} is listed twice", var.name));
        }
    }
    for (name, _) in &header.attributes {
        if !is_valid_name(name) || name == "Conventions" {
            return fail(format!(
                "global attribute name {name:?} is invalid or reserved"
            ));
        }
    }
    Ok(())
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A variable definition in the header.
struct VarDef {
    name: String,
    dims: Vec<u32>,
    attrs: Vec<(String, AttrValue)>,
    nc_type: u32,
    /// Bytes per record for record variables, total bytes for fixed ones.
    vsize: u32,
    is_record: bool,
}

enum AttrValue {
    Text(String),
    Float(f32),
}

fn text(name: &str, value: &str) -> (String, AttrValue) {
    (name.to_owned(), AttrValue::Text(value.to_owned()))
}

/// Encodes the header and the fixed variables (everything before the first record).
fn encode_header_and_fixed_data(header: &CfHeader) -> Vec<u8> {
    let (ny, nx) = (header.grid.ny() as u32, header.grid.nx() as u32);
    let members = header.members.map(|m| m as u32);
    let init = header.init_time.format("%Y-%m-%d %H:%M:%S").to_string();
    let since = format!("hours since {init}");
    // Dimension ids: 0 time, 1 lat, 2 lon, 3 member.
    let mut dims = vec![("time", 0u32), ("lat", ny), ("lon", nx)];
    if let Some(m) = members {
        dims.push(("member", m));
    }
    let cells = members.unwrap_or(1) * ny * nx;
    let mut data_dims = vec![0];
    if members.is_some() {
        data_dims.push(3);
    }
    data_dims.extend([1, 2]);
    let mut vars = vec![
        fixed(
            "lat",
            vec![1],
            NC_DOUBLE,
            8 * ny,
            vec![
                text("units", "degrees_north"),
                text("standard_name", "latitude"),
            ],
        ),
        fixed(
            "lon",
            vec![2],
            NC_DOUBLE,
            8 * nx,
            vec![
                text("units", "degrees_east"),
                text("standard_name", "longitude"),
            ],
        ),
    ];
    if let Some(m) = members {
        vars.push(fixed(
            "member",
            vec![3],
            NC_INT,
            4 * m,
            vec![text("long_name", "ensemble member")],
        ));
    }
    vars.push(fixed(
        "forecast_reference_time",
        vec![],
        NC_DOUBLE,
        8,
        vec![
            text("units", &since),
            text("standard_name", "forecast_reference_time"),
        ],
    ));
    vars.push(record(
        "time",
        vec![0],
        NC_DOUBLE,
        8,
        vec![
            text("units", &since),
            text("standard_name", "time"),
            text("axis", "T"),
        ],
    ));
    vars.push(record(
        "lead_time",
        vec![0],
        NC_DOUBLE,
        8,
        vec![
            text("units", "hours"),
            text("standard_name", "forecast_period"),
        ],
    ));
    for var in &header.variables {
        vars.push(record(
            &var.name,
            data_dims.clone(),
            NC_FLOAT,
            4 * cells,
            vec![
                text("units", &var.units),
                text("long_name", &var.long_name),
                ("_FillValue".to_owned(), AttrValue::Float(FILL_VALUE_F32)),
            ],
        ));
    }
    let mut globals = vec![text("Conventions", "CF-1.8")];
    globals.extend(header.attributes.iter().map(|(k, v)| text(k, v)));

    // Begin offsets depend on the header length, which does not depend on their
    // values (4 bytes each in the classic format), so encode once with zeros.
    let length = encode_header(&dims, &globals, &vars, &[]).len() as u32;
    let mut begins = Vec::with_capacity(vars.len());
    let mut offset = length;
    for var in vars.iter().filter(|v| !v.is_record) {
        begins.push(offset);
        offset += var.vsize;
    }
    for var in vars.iter().filter(|v| v.is_record) {
        begins.push(offset);
        offset += var.vsize;
    }
    let ordered: Vec<&VarDef> = vars
        .iter()
        .filter(|v| !v.is_record)
        .chain(vars.iter().filter(|v| v.is_record))
        .collect();
    let mut bytes = encode_header(&dims, &globals, &vars, &begin_map(&vars, &ordered, &begins));
    bytes.extend(fixed_data(header));
    bytes
}

fn begin_map(vars: &[VarDef], ordered: &[&VarDef], begins: &[u32]) -> Vec<u32> {
    vars.iter()
        .map(|v| {
            let k = ordered.iter().position(|o| o.name == v.name).unwrap_or(0);
            begins[k]
        })
        .collect()
}

fn fixed(
    name: &str,
    dims: Vec<u32>,
    nc_type: u32,
    vsize: u32,
    attrs: Vec<(String, AttrValue)>,
) -> VarDef {
    VarDef {
        name: name.to_owned(),
        dims,
        attrs,
        nc_type,
        vsize,
        is_record: false,
    }
}

fn record(
    name: &str,
    dims: Vec<u32>,
    nc_type: u32,
    vsize: u32,
    attrs: Vec<(String, AttrValue)>,
) -> VarDef {
    VarDef {
        is_record: true,
        ..fixed(name, dims, nc_type, vsize, attrs)
    }
}

/// Values of the fixed variables in the order their begin offsets were assigned.
fn fixed_data(header: &CfHeader) -> Vec<u8> {
    let mut bytes = Vec::new();
    for &y in &header.grid.lat {
        bytes.extend_from_slice(&y.to_be_bytes());
    }
    for &x in &header.grid.lon {
        bytes.extend_from_slice(&x.to_be_bytes());
    }
    if let Some(m) = header.members {
        for k in 0..m as i32 {
            bytes.extend_from_slice(&k.to_be_bytes());
        }
    }
    bytes.extend_from_slice(&0f64.to_be_bytes());
    bytes
}

fn encode_header(
    dims: &[(&str, u32)],
    globals: &[(String, AttrValue)],
    vars: &[VarDef],
    begins: &[u32],
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"CDF\x01");
    put_u32(&mut b, 0); // numrecs, patched by finish()
    put_u32(&mut b, NC_DIMENSION);
    put_u32(&mut b, dims.len() as u32);
    for (name, len) in dims {
        put_name(&mut b, name);
        put_u32(&mut b, *len);
    }
    put_attrs(&mut b, globals);
    put_u32(&mut b, NC_VARIABLE);
    put_u32(&mut b, vars.len() as u32);
    for (k, var) in vars.iter().enumerate() {
        put_name(&mut b, &var.name);
        put_u32(&mut b, var.dims.len() as u32);
        for &d in &var.dims {
            put_u32(&mut b, d);
        }
        put_attrs(&mut b, &var.attrs);
        put_u32(&mut b, var.nc_type);
        put_u32(&mut b, var.vsize);
        put_u32(&mut b, begins.get(k).copied().unwrap_or(0));
    }
    b
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}

/// Appends a length-prefixed byte string padded with zeros to a multiple of 4.
fn put_padded(b: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(b, bytes.len() as u32);
    b.extend_from_slice(bytes);
    b.resize(b.len() + (4 - bytes.len() % 4) % 4, 0);
}

fn put_name(b: &mut Vec<u8>, name: &str) {
    put_padded(b, name.as_bytes());
}

fn put_attrs(b: &mut Vec<u8>, attrs: &[(String, AttrValue)]) {
    if attrs.is_empty() {
        // ABSENT: a zero tag and a zero count.
        put_u32(b, 0);
        put_u32(b, 0);
        return;
    }
    put_u32(b, NC_ATTRIBUTE);
    put_u32(b, attrs.len() as u32);
    for (name, value) in attrs {
        put_name(b, name);
        match value {
            AttrValue::Text(text) => {
                put_u32(b, NC_CHAR);
                put_padded(b, text.as_bytes());
            }
            AttrValue::Float(v) => {
                put_u32(b, NC_FLOAT);
                put_u32(b, 1);
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
}
