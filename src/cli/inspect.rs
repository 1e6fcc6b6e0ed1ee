//! `gridcast inspect FILE`: summarise a netCDF-3 or GRIB2 file.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// netCDF-3 (classic or 64-bit offset) or GRIB2 file to summarise.
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // GridError wraps grib's error, which is not Sync, so it is rendered here instead
    // of being carried inside anyhow. Every reader error already names the file.
    let summary = gridcast_grid::inspect(&args.file).map_err(|err| anyhow::anyhow!("{err}"))?;
    print!("{summary}");
    Ok(())
}
