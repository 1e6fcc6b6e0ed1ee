//! `gridcast inspect FILE`: summarise a netCDF-3 or GRIB2 file.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// netCDF-3 (classic or 64-bit offset) or GRIB2 file to summarise.
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let summary = gridcast_grid::inspect(&args.file)
        .with_context(|| format!("cannot inspect {}", args.file.display()))?;
    print!("{summary}");
    Ok(())
}
