//! `gridcast`: one binary for the embedded service, its distributed processes, and the
//! forecast engine's command-line tools.

use clap::{Parser, Subcommand};

mod cli;
mod config;
mod cycles;

#[derive(Debug, Parser)]
#[command(name = "gridcast", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train the neural forecast model on a dataset's training steps (CPU).
    Train(cli::train::Args),
    /// Run one forecast from an init time to a lead time and write CF netCDF.
    Forecast(cli::forecast::Args),
    /// Score a model and the persistence and climatology baselines.
    Evaluate(cli::evaluate::Args),
    /// List the variables, grid, time axis and missing data of a netCDF or GRIB2 file.
    Inspect(cli::inspect::Args),
    /// Run the embedded service: API, queue, workers and scheduler in one process.
    Serve(cli::serve::Args),
    /// Run only the HTTP API (distributed mode; same settings as serve).
    Api(cli::serve::Args),
    /// Run only job workers (distributed mode; same settings as serve).
    Worker(cli::serve::Args),
    /// Run only the forecast-cycle scheduler and ReasoningBank (distributed mode).
    Scheduler(cli::serve::Args),
    /// Apply the job store's database migrations and exit.
    Migrate(cli::serve::Args),
    /// Create, list or revoke API keys.
    Keys(cli::keys::Args),
    /// Run the batch of forecast jobs a TOML file describes through an embedded service.
    Run(cli::run::Args),
    /// Submit a forecast job to a running server.
    Submit(cli::client::SubmitArgs),
    /// Show one job of a running server.
    Status(cli::client::StatusArgs),
    /// List the jobs of a running server.
    Jobs(cli::client::JobsArgs),
    /// Download a job's result file.
    Result(cli::client::ResultArgs),
    /// Export or import the ReasoningBank's job outcomes and skill records.
    Bank(cli::bank::Args),
}

fn main() -> std::process::ExitCode {
    exit_quietly_on_closed_stdout();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line; a backtrace would only
            // bury the message for the people this command serves.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train(args) => cli::train::run(args),
        Command::Forecast(args) => cli::forecast::run(args),
        Command::Evaluate(args) => cli::evaluate::run(args),
        Command::Inspect(args) => cli::inspect::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Api(args) => cli::serve::run_roles(args, cli::serve::Roles::API),
        Command::Worker(args) => cli::serve::run_roles(args, cli::serve::Roles::WORKER),
        Command::Scheduler(args) => cli::serve::run_roles(args, cli::serve::Roles::SCHEDULER),
        Command::Migrate(args) => cli::serve::migrate(args),
        Command::Keys(args) => cli::keys::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::Submit(args) => cli::client::submit(args),
        Command::Status(args) => cli::client::status(args),
        Command::Jobs(args) => cli::client::jobs(args),
        Command::Result(args) => cli::client::result(args),
        Command::Bank(args) => cli::bank::run(args),
    }
}

/// Makes a closed stdout (`gridcast jobs | head`) end the process like other Unix tools
/// instead of with a panic report. `println!` panics when a write fails, and Rust
/// ignores SIGPIPE, so the broken pipe arrives as that panic.
fn exit_quietly_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            // 128 + SIGPIPE, the status a shell reports for a process killed by it.
            std::process::exit(141);
        }
        default_hook(info);
    }));
}
