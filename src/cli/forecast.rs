//! `gridcast forecast`: one forecast, run in this process, written to a netCDF file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use gridcast_engine::{
    Catalog, ForecastRequest, Region, RequestLimits, RunControl, parse_utc_time, quote_input,
    run_forecast,
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
    #[arg(long, env = "GRIDCAST_INIT_TIME", value_parser = ShortEcho(parse_utc_time))]
    pub init_time: DateTime<Utc>,
    /// Lead time in hours: a positive multiple of the model step.
    #[arg(long, env = "GRIDCAST_LEAD_HOURS")]
    pub lead_hours: u32,
    /// Bounding box as SOUTH,NORTH,WEST,EAST in degrees north and east; WEST > EAST
    /// crosses the antimeridian. The dataset's whole domain when omitted.
    #[arg(
        long,
        env = "GRIDCAST_REGION",
        value_parser = ShortEcho(parse_region),
        allow_hyphen_values = true
    )]
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
    check_output_path(&args.output, "--output")?;
    let catalog = Catalog::open(&args.data_root, &args.model_root)
        .context("failed to open the data and model catalog")?;
    let request = args.request.into_request();
    let validated = catalog.validate(&request, &RequestLimits::default())?;
    let summary = run_forecast(&catalog, &validated, &args.output, &RunControl::none())?;
    println!(
        "wrote {} ({} step{} of {} h, model {})",
        args.output.display(),
        summary.steps,
        if summary.steps == 1 { "" } else { "s" },
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

/// A clap value parser around `parse`, whose error message already quotes the value
/// cut to a readable length. clap's own wrapping of a parser error repeats the whole
/// value, which for a 100 KB argument floods the terminal.
#[derive(Clone)]
pub struct ShortEcho<T>(pub fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for ShortEcho<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let flag = arg.map_or_else(|| "the value".to_owned(), ToString::to_string);
        let result = match value.to_str() {
            Some(text) => (self.0)(text),
            None => Err("the value is not valid UTF-8".to_owned()),
        };
        result.map_err(|message| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {flag}: {message}\n"),
            )
            .with_cmd(cmd)
        })
    }
}

/// Parses `SOUTH,NORTH,WEST,EAST` in degrees.
pub fn parse_region(text: &str) -> Result<Region, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [south, north, west, east] = parts.as_slice() else {
        return Err(format!(
            "invalid region {}: expected SOUTH,NORTH,WEST,EAST in degrees, for example \
             30,50,-120,-80",
            quote_input(text)
        ));
    };
    let number = |name: &str, value: &str| {
        value.parse::<f64>().map_err(|_| {
            format!(
                "invalid region {name} {}: expected degrees as a number",
                quote_input(value)
            )
        })
    };
    Ok(Region {
        south: number("south", south)?,
        north: number("north", north)?,
        west: number("west", west)?,
        east: number("east", east)?,
    })
}

/// Rejects an output path, given as `argument` (such as `--output`), that names a
/// directory, exists but is not a regular file, or lies in a missing directory. Outputs
/// are renamed into place, which would replace a symbolic link or a device node
/// instead of writing through it.
pub(crate) fn check_output_path(path: &Path, argument: &str) -> anyhow::Result<()> {
    let names_directory = path.as_os_str().as_encoded_bytes().ends_with(b"/");
    if names_directory || path.file_name().is_none() {
        anyhow::bail!(
            "invalid {argument} {}: it names a directory, not a file; give a file path",
            path.display()
        );
    }
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.file_type().is_file()
    {
        anyhow::bail!(
            "invalid {argument} {}: it exists and is not a regular file (a link, directory \
             or device); give a new or regular file path",
            path.display()
        );
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::metadata(directory) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!(
            "invalid {argument} {}: {} is a file, not a directory; choose another path",
            path.display(),
            directory.display()
        ),
        Err(_) => anyhow::bail!(
            "invalid {argument} {}: the output directory {} does not exist; create it or \
             choose another path",
            path.display(),
            directory.display()
        ),
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
    fn missing_output_directory_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent/x.nc");
        let text = check_output_path(&missing, "--output")
            .unwrap_err()
            .to_string();
        let absent = dir.path().join("absent");
        assert!(
            text.contains(&format!(
                "output directory {} does not exist",
                absent.display()
            )),
            "{text}"
        );
        assert!(text.contains("create it or choose another path"), "{text}");

        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let under_file = file.join("x.nc");
        let text = check_output_path(&under_file, "--output")
            .unwrap_err()
            .to_string();
        assert!(text.contains("is a file, not a directory"), "{text}");

        assert!(check_output_path(&dir.path().join("x.nc"), "--output").is_ok());
        assert!(check_output_path(Path::new("x.nc"), "--output").is_ok());
    }

    #[test]
    fn directory_output_path_rejected() {
        // A missing directory written with a trailing slash, and paths with no file name.
        for path in ["missing-dir/", "..", "/"] {
            let text = check_output_path(Path::new(path), "--output")
                .unwrap_err()
                .to_string();
            assert!(
                text.contains("it names a directory, not a file"),
                "{path}: {text}"
            );
        }
    }

    #[test]
    fn long_init_time_cut() {
        let text = parse(&"9".repeat(100_000)).unwrap_err().to_string();
        assert!(text.len() < 1_000, "{} bytes", text.len());
        assert!(text.contains("--init-time"), "{text}");
        assert!(text.contains("(100000 characters"), "{text}");
    }

    #[test]
    fn long_region_value_cut() {
        let text = parse_region(&"1".repeat(10_000)).unwrap_err();
        assert!(text.len() < 500, "{} bytes", text.len());
        assert!(text.contains("(10000 characters"), "{text}");
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
