//! `gridcast bank`: back up the ReasoningBank, or carry what one site learned to another.

use std::path::PathBuf;

use anyhow::Context;
use gridcast_bank::Bank;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// ReasoningBank SQLite file; created when missing. `gridcast serve` keeps its bank
    /// at DATA_DIR/bank.sqlite, and this default matches serve's default data dir.
    #[arg(
        long,
        env = "GRIDCAST_BANK",
        default_value = "gridcast-data/bank.sqlite"
    )]
    pub bank: PathBuf,
    #[command(subcommand)]
    pub command: BankCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BankCommand {
    /// Write all job outcomes and skill records to FILE as JSON lines (format version 1,
    /// described in docs/reasoning-bank.md).
    Export {
        /// Output file; replaced if it exists.
        file: PathBuf,
    },
    /// Merge an export FILE into the bank in one transaction and recompute the patterns
    /// it touches. Records already in the bank are kept; a damaged or newer-version file
    /// changes nothing.
    Import {
        /// Export file written by `gridcast bank export`.
        file: PathBuf,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let bank = Bank::open(&args.bank)
        .with_context(|| format!("failed to open bank {}", args.bank.display()))?;
    match args.command {
        BankCommand::Export { file } => {
            crate::cli::forecast::check_output_path(&file, "export FILE")?;
            let records = bank
                .export(&file, chrono::Utc::now())
                .with_context(|| format!("failed to export bank to {}", file.display()))?;
            println!("exported {records} records to {}", file.display());
        }
        BankCommand::Import { file } => {
            let report = bank.import(&file)?;
            println!(
                "imported {} outcomes and {} skill records from {} ({} outcomes and {} skill \
                 records were already present); {} pattern scopes recomputed",
                report.outcomes_added,
                report.skill_added,
                file.display(),
                report.outcomes_present,
                report.skill_present,
                report.patterns_refreshed
            );
        }
    }
    Ok(())
}
