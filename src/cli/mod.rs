//! One module per subcommand; each has its clap `Args` and a `run` entry point.

pub mod bank;
pub mod client;
pub mod evaluate;
pub mod forecast;
pub mod inspect;
pub mod keys;
pub mod run;
pub mod serve;
pub mod train;
