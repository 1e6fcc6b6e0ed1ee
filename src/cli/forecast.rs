//! `gridcast forecast`: one forecast, run in this process, written to a netCDF file.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use gridcast_engine::{
    Catalog, ForecastRequest, Region, RequestLimits, RunControl, parse_utc_time, run_forecast,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory holding one sub-directory per dataset, each with a dataset.toml.
    #[arg(long, env = "GRIDCAST_DATA_ROOT", default_value = "data")]
    pub data_root: PathBuf,
    /// Directory holding one sub-directory per trained model, each with a manifest.json.
    #[arg(long, env = "GRIDCAST_MODEL_ROOT", default_value = "models")]
    pub model_root: PathBuf,
    #[command(flatten)]
    pub request: RequestArgs,
    /// Output netCDF file.
    #[arg(long, short, env = "GRIDCAST_OUTPUT")]
    pub output: PathBuf,
}

/// The forecast request flags, shared by `forecast` and `submit`.
#[derive(Debug, Clone, clap::Args)]
pub struct RequestArgs {
    /// Dataset name, as listed by `GET /v1/datasets`.
    #[arg(long, env = "GRIDCAST_DATASET", default_value = "storm-1996")]
    pub dataset: String,
    /// Model id; the dataset's default model when omitted.
    #[arg(long, env = "GRIDCAST_MODEL")]
    pub model: Option<String>,
    /// Init time in UTC: RFC 3339 such as 1996-01-16T00:00:00Z, or 1996-01-16 (00:00),
    /// 1996-01-16T06, 1996-01-16T06:00 or 1996-01-16 06:00:00.
    #[arg(long, env = "GRIDCAST_INIT_TIME", value_parser = parse_utc_time)]
    pub init_time: DateTime<Utc>,
    /// Lead time in hours: a positive multiple of the model step.
    #[arg(long, env = "GRIDCAST_LEAD_HOURS")]
    pub lead_hours: u32,
    /// Bounding box as SOUTH,NORTH,WEST,EAST in degrees north and east; WEST > EAST
    /// crosses the antimeridian. The dataset's whole domain when omitted.
    #[arg(long, env = "GRIDCAST_REGION", value_parser = parse_region, allow_hyphen_values = true)]
    pub region: Option<Region>,
    /// Comma-separated variable names; all of the dataset's when omitted.
    #[arg(long, env = "GRIDCAST_VARIABLES", value_delimiter = ',')]
    pub variables: Option<Vec<String>>,
}

impl RequestArgs {
    /// Builds the deterministic (one-member) request these flags describe.
    pub fn into_request(self) -> ForecastRequest {
        ForecastRequest {
            dataset: self.dataset,
            model: self.model,
            init_time: self.init_time,
            lead_hours: self.lead_hours,
            region: self.region,
            variables: self.variables,
            members: 1,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_output_path(&args.output)?;
    let catalog = Catalog::open(&args.data_root, &args.model_root)
        .context("failed to open the data and model catalog")?;
    let request = args.request.into_request();
    let validated = catalog.validate(&request, &RequestLimits::default())?;
    let summary = run_forecast(&catalog, &validated, &args.output, &RunControl::none())?;
    println!(
        "wrote {} ({} steps of {} h, model {})",
        args.output.display(),
        summary.steps,
        validated.step_hours,
        summary.model_id
    );
    for line in &summary.skill {
        println!(
            "  {:>5} at +{:>3} h: RMSE {:.3}, persistence {:.3} (ratio {:.2})",
            line.variable,
            line.lead_hours,
            line.rmse,
            line.persistence_rmse,
            line.rmse / line.persistence_rmse
        );
    }
    Ok(())
}

/// Parses `SOUTH,NORTH,WEST,EAST` in degrees.
pub fn parse_region(text: &str) -> Result<Region, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [south, north, west, east] = parts.as_slice() else {
        return Err(format!(
            "invalid region {text:?}: expected SOUTH,NORTH,WEST,EAST in degrees, \
             for example 30,50,-120,-80"
        ));
    };
    let number = |name: &str, value: &str| {
        value
            .parse::<f64>()
            .map_err(|_| format!("invalid region {name} {value:?}: expected degrees as a number"))
    };
    Ok(Region {
        south: number("south", south)?,
        north: number("north", north)?,
        west: number("west", west)?,
        east: number("east", east)?,
    })
}

/// Rejects an output path that exists but is not a regular file. The result is renamed
/// into place, which would replace a symbolic link or a device node instead of writing
/// through it.
fn check_output_path(path: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => anyhow::bail!(
            "invalid --output {}: it exists and is not a regular file (a link, directory \
             or device); give a new or regular file path",
            path.display()
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `forecast` and `submit` share these flags.
    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        request: RequestArgs,
    }

    fn parse(init_time: &str) -> Result<Flags, clap::Error> {
        Flags::try_parse_from(["gridcast", "--init-time", init_time, "--lead-hours", "6"])
    }

    #[test]
    fn init_time_takes_bare_date() {
        let flags = parse("1996-01-16").unwrap();
        let expected: DateTime<Utc> = "1996-01-16T00:00:00Z".parse().unwrap();
        assert_eq!(flags.request.init_time, expected);
        let flags = parse("1996-01-16T06").unwrap();
        let expected: DateTime<Utc> = "1996-01-16T06:00:00Z".parse().unwrap();
        assert_eq!(flags.request.init_time, expected);
    }

    #[test]
    fn invalid_init_time_names_forms() {
        let text = parse("1996-01-32").unwrap_err().to_string();
        assert!(text.contains("--init-time"), "{text}");
        assert!(text.contains("\"1996-01-32\""), "{text}");
        assert!(text.contains("1996-01-16T00:00:00Z"), "{text}");
        assert!(!text.contains("premature end of input"), "{text}");
    }
}
