//! Settings of the embedded service: a TOML file (`--config`), environment variables
//! and flags, merged in that order of increasing precedence and validated into one
//! [`ServiceConfig`] before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Service flags; each also reads a `GRIDCAST_*` environment variable and a key of the
/// same name (with underscores) in the `--config` file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServiceArgs {
    /// TOML file with any of the settings below (keys as the flag names, with
    /// underscores). Flags and environment variables override it.
    #[arg(long, env = "GRIDCAST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Socket address for the HTTP API; port 0 picks a free port [default: 127.0.0.1:8080].
    #[arg(long, env = "GRIDCAST_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the embedded database, result objects and scratch files
    /// [default: gridcast-data].
    #[arg(long, env = "GRIDCAST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Job database URL [default: sqlite://DATA_DIR/gridcast.db].
    #[arg(long, env = "GRIDCAST_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Result object store URL [default: file://DATA_DIR/objects].
    #[arg(long, env = "GRIDCAST_RESULTS_URL")]
    pub results_url: Option<String>,
    /// Job workers in this process, each running one forecast at a time [default: 1].
    #[arg(long, env = "GRIDCAST_WORKERS")]
    pub workers: Option<usize>,
    /// Directory with one sub-directory per dataset [default: data].
    #[arg(long, env = "GRIDCAST_DATA_ROOT")]
    pub data_root: Option<PathBuf>,
    /// Directory with one sub-directory per trained model [default: models].
    #[arg(long, env = "GRIDCAST_MODEL_ROOT")]
    pub model_root: Option<PathBuf>,
    /// Job lease in seconds: a job whose worker sent no heartbeat for this long runs
    /// again elsewhere [default: 30].
    #[arg(long, env = "GRIDCAST_LEASE_SECS")]
    pub lease_secs: Option<f64>,
    /// Heartbeat interval in seconds; also the maximum delay before a running job notices
    /// its cancellation. At most half the lease [default: 1].
    #[arg(long, env = "GRIDCAST_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<f64>,
    /// Seconds an idle worker waits between queue polls [default: 0.5].
    #[arg(long, env = "GRIDCAST_POLL_SECS")]
    pub poll_secs: Option<f64>,
    /// Attempts per job, the first included, before a retryable failure is final
    /// [default: 3].
    #[arg(long, env = "GRIDCAST_MAX_ATTEMPTS")]
    pub max_attempts: Option<u32>,
    /// Backoff before the second attempt in seconds, doubled per further attempt
    /// [default: 2].
    #[arg(long, env = "GRIDCAST_RETRY_BASE_SECS")]
    pub retry_base_secs: Option<f64>,
    /// Maximum backoff in seconds [default: 300].
    #[arg(long, env = "GRIDCAST_RETRY_MAX_SECS")]
    pub retry_max_secs: Option<f64>,
    /// Queued jobs at which submissions get 429 Too Many Requests [default: 1000].
    #[arg(long, env = "GRIDCAST_MAX_QUEUE_DEPTH")]
    pub max_queue_depth: Option<u64>,
    /// Largest request body in bytes; larger bodies get 413 [default: 65536].
    #[arg(long, env = "GRIDCAST_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Maximum lead time a job may request, in hours [default: 240].
    #[arg(long, env = "GRIDCAST_MAX_LEAD_HOURS")]
    pub max_lead_hours: Option<u32>,
    /// Device name recorded on jobs [default: cpu].
    #[arg(long, env = "GRIDCAST_DEVICE")]
    pub device: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "GRIDCAST_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// TOML file of forecast-cycle schedules applied at start-up (format in
    /// docs/scheduler.md); schedules can also be managed over /v1/schedules.
    #[arg(long, env = "GRIDCAST_SCHEDULES")]
    pub schedules: Option<PathBuf>,
    /// Pause in seconds after each rollout step, so tests and demos can cancel or kill
    /// a run midway. Leave unset in production.
    #[arg(long, env = "GRIDCAST_STEP_DELAY_SECS", hide = true)]
    pub step_delay_secs: Option<f64>,
    /// Seconds a process may take after SIGTERM to hand back running jobs and stop
    /// [default: 30].
    #[arg(long, env = "GRIDCAST_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<f64>,
    /// API keys: `required`, or `off` (allowed only on a loopback address) [default:
    /// off on loopback, required elsewhere].
    #[arg(long, env = "GRIDCAST_AUTH")]
    pub auth: Option<String>,
    /// Requests per minute each API key may make [default: 600].
    #[arg(long, env = "GRIDCAST_RATE_LIMIT_PER_MINUTE")]
    pub rate_limit_per_minute: Option<u32>,
    /// Redis for job wake-ups between processes, for example redis://127.0.0.1:6379
    /// [default: none; workers of other processes poll].
    #[arg(long, env = "GRIDCAST_REDIS_URL")]
    pub redis_url: Option<String>,
}

/// The same settings as read from a TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub results_url: Option<String>,
    pub workers: Option<usize>,
    pub data_root: Option<PathBuf>,
    pub model_root: Option<PathBuf>,
    pub lease_secs: Option<f64>,
    pub heartbeat_secs: Option<f64>,
    pub poll_secs: Option<f64>,
    pub max_attempts: Option<u32>,
    pub retry_base_secs: Option<f64>,
    pub retry_max_secs: Option<f64>,
    pub max_queue_depth: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub max_lead_hours: Option<u32>,
    pub device: Option<String>,
    pub log_format: Option<String>,
    pub schedules: Option<PathBuf>,
    pub step_delay_secs: Option<f64>,
    pub shutdown_grace_secs: Option<f64>,
    pub auth: Option<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub redis_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated settings of the embedded service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub results_url: String,
    pub workers: usize,
    pub data_root: PathBuf,
    pub model_root: PathBuf,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub poll_interval: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub max_queue_depth: u64,
    pub max_body_bytes: usize,
    pub max_lead_hours: u32,
    pub device: String,
    pub log_format: LogFormat,
    pub schedules: Option<PathBuf>,
    pub step_delay: Option<Duration>,
    pub shutdown_grace: Duration,
    pub auth: gridcast_api::AuthMode,
    pub rate_limit_per_minute: u32,
    pub redis_url: Option<String>,
}

/// Reads a `--config` file.
pub fn read_file_settings(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|err| {
        // toml's own message quotes the offending line, which may hold a database
        // password; report the position and the reason only.
        let line = err
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        match line {
            Some(line) => anyhow::anyhow!(
                "invalid config file {} at line {line}: {}",
                path.display(),
                err.message()
            ),
            None => anyhow::anyhow!("invalid config file {}: {}", path.display(), err.message()),
        }
    })
}

impl ServiceArgs {
    /// Merges flags and environment (already in `self`) over the `--config` file and
    /// over `base`, then validates.
    pub fn resolve(&self, base: FileSettings) -> anyhow::Result<ServiceConfig> {
        let file = match &self.config {
            Some(path) => read_file_settings(path)?,
            None => FileSettings::default(),
        };
        let merged = FileSettings {
            listen: pick(&self.listen, &file.listen, &base.listen),
            data_dir: pick(&self.data_dir, &file.data_dir, &base.data_dir),
            database_url: pick(&self.database_url, &file.database_url, &base.database_url),
            results_url: pick(&self.results_url, &file.results_url, &base.results_url),
            workers: self.workers.or(file.workers).or(base.workers),
            data_root: pick(&self.data_root, &file.data_root, &base.data_root),
            model_root: pick(&self.model_root, &file.model_root, &base.model_root),
            lease_secs: self.lease_secs.or(file.lease_secs).or(base.lease_secs),
            heartbeat_secs: self
                .heartbeat_secs
                .or(file.heartbeat_secs)
                .or(base.heartbeat_secs),
            poll_secs: self.poll_secs.or(file.poll_secs).or(base.poll_secs),
            max_attempts: self
                .max_attempts
                .or(file.max_attempts)
                .or(base.max_attempts),
            retry_base_secs: self
                .retry_base_secs
                .or(file.retry_base_secs)
                .or(base.retry_base_secs),
            retry_max_secs: self
                .retry_max_secs
                .or(file.retry_max_secs)
                .or(base.retry_max_secs),
            max_queue_depth: self
                .max_queue_depth
                .or(file.max_queue_depth)
                .or(base.max_queue_depth),
            max_body_bytes: self
                .max_body_bytes
                .or(file.max_body_bytes)
                .or(base.max_body_bytes),
            max_lead_hours: self
                .max_lead_hours
                .or(file.max_lead_hours)
                .or(base.max_lead_hours),
            device: pick(&self.device, &file.device, &base.device),
            log_format: pick(&self.log_format, &file.log_format, &base.log_format),
            schedules: pick(&self.schedules, &file.schedules, &base.schedules),
            step_delay_secs: self
                .step_delay_secs
                .or(file.step_delay_secs)
                .or(base.step_delay_secs),
            shutdown_grace_secs: self
                .shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .or(base.shutdown_grace_secs),
            auth: pick(&self.auth, &file.auth, &base.auth),
            rate_limit_per_minute: self
                .rate_limit_per_minute
                .or(file.rate_limit_per_minute)
                .or(base.rate_limit_per_minute),
            redis_url: pick(&self.redis_url, &file.redis_url, &base.redis_url),
        };
        merged.validate()
    }
}

impl FileSettings {
    /// Fills defaults and checks every setting, naming the first invalid one.
    pub fn validate(self) -> anyhow::Result<ServiceConfig> {
        let listen_text = self.listen.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("invalid setting listen = {listen_text:?}: expected IP:PORT, for example 127.0.0.1:8080")
        })?;
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("gridcast-data"));
        if data_dir.as_os_str().is_empty() {
            bail!("invalid setting data_dir: must not be empty");
        }
        let absolute = std::path::absolute(&data_dir)
            .with_context(|| format!("invalid setting data_dir = {}", data_dir.display()))?;
        let database_url = self
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", absolute.join("gridcast.db").display()));
        let results_url = self
            .results_url
            .unwrap_or_else(|| format!("file://{}", absolute.join("objects").display()));
        let workers = self.workers.unwrap_or(1);
        if !(1..=256).contains(&workers) {
            bail!("invalid setting workers = {workers}: expected 1 to 256");
        }
        let lease = seconds("lease_secs", self.lease_secs.unwrap_or(30.0))?;
        let heartbeat = seconds("heartbeat_secs", self.heartbeat_secs.unwrap_or(1.0))?;
        if heartbeat * 2 > lease {
            bail!(
                "invalid setting heartbeat_secs = {}: must be at most half of lease_secs = {}",
                heartbeat.as_secs_f64(),
                lease.as_secs_f64()
            );
        }
        let max_attempts = self.max_attempts.unwrap_or(3);
        if max_attempts == 0 {
            bail!("invalid setting max_attempts = 0: expected at least 1");
        }
        let retry_base = seconds("retry_base_secs", self.retry_base_secs.unwrap_or(2.0))?;
        let retry_max = seconds("retry_max_secs", self.retry_max_secs.unwrap_or(300.0))?;
        if retry_max < retry_base {
            bail!("invalid setting retry_max_secs: must be at least retry_base_secs");
        }
        let max_body_bytes = self.max_body_bytes.unwrap_or(64 * 1024);
        if max_body_bytes < 256 {
            bail!("invalid setting max_body_bytes = {max_body_bytes}: expected at least 256");
        }
        let max_lead_hours = self.max_lead_hours.unwrap_or(240);
        if max_lead_hours == 0 {
            bail!("invalid setting max_lead_hours = 0: expected at least one model step");
        }
        let log_format = match self.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("invalid setting log_format = {other:?}: expected text or json"),
        };
        Ok(ServiceConfig {
            listen,
            data_dir: absolute,
            database_url,
            results_url,
            workers,
            data_root: self.data_root.unwrap_or_else(|| PathBuf::from("data")),
            model_root: self.model_root.unwrap_or_else(|| PathBuf::from("models")),
            lease,
            heartbeat,
            poll_interval: seconds("poll_secs", self.poll_secs.unwrap_or(0.5))?,
            max_attempts,
            retry_base,
            retry_max,
            max_queue_depth: self.max_queue_depth.unwrap_or(1000),
            max_body_bytes,
            max_lead_hours,
            device: self.device.unwrap_or_else(|| "cpu".to_owned()),
            log_format,
            schedules: self.schedules,
            step_delay: self
                .step_delay_secs
                .map(|value| seconds("step_delay_secs", value))
                .transpose()?,
            shutdown_grace: seconds(
                "shutdown_grace_secs",
                self.shutdown_grace_secs.unwrap_or(30.0),
            )?,
            auth: auth_mode(self.auth.as_deref(), listen)?,
            rate_limit_per_minute: match self.rate_limit_per_minute {
                Some(0) => {
                    bail!("rate_limit_per_minute = 0 would refuse every request: set 1 or more")
                }
                Some(limit) => limit,
                None => 600,
            },
            redis_url: match self.redis_url {
                Some(url) if !url.starts_with("redis://") => bail!(
                    "invalid setting redis_url `{}`: expected redis://HOST:PORT",
                    gridcast_store::redact_url(&url)
                ),
                other => other,
            },
        })
    }
}

/// Checks `auth` against the listen address: keys may be off only on loopback, where
/// only local users can reach the service.
fn auth_mode(auth: Option<&str>, listen: SocketAddr) -> anyhow::Result<gridcast_api::AuthMode> {
    use gridcast_api::AuthMode;
    let loopback = listen.ip().is_loopback();
    match auth {
        None if loopback => Ok(AuthMode::Off),
        None | Some("required") => Ok(AuthMode::Required),
        Some("off") if loopback => Ok(AuthMode::Off),
        Some("off") => bail!(
            "auth = off is allowed only on a loopback address, and listen is {listen}: \
             use auth = required with keys from `gridcast keys create`, or listen on \
             127.0.0.1"
        ),
        Some(other) => bail!("auth `{other}` is not one of required, off"),
    }
}

/// Returns the first of flag (or environment), file and base that is set.
fn pick<T: Clone>(flag: &Option<T>, file: &Option<T>, base: &Option<T>) -> Option<T> {
    flag.clone()
        .or_else(|| file.clone())
        .or_else(|| base.clone())
}

fn seconds(setting: &str, value: f64) -> anyhow::Result<Duration> {
    if !(value.is_finite() && value > 0.0 && value < 1e9) {
        bail!(
            "invalid setting {setting} = {value}: expected a number of seconds above 0 and \
             below 1e9 (about 31 years)"
        );
    }
    Ok(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_syntax_error_hides_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        // An unterminated string: toml's own message would quote the whole line.
        std::fs::write(&path, "database_url = \"postgres://u:Sup3rSecret@h/db\n").unwrap();
        let err = format!("{:#}", read_file_settings(&path).unwrap_err());
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains("Sup3rSecret"), "{err}");
    }

    #[test]
    fn defaults_validate() {
        let config = FileSettings::default().validate().unwrap();
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.workers, 1);
        assert!(config.database_url.starts_with("sqlite://"));
        assert!(config.results_url.starts_with("file:///"));
    }

    #[test]
    fn flag_overrides_base() {
        let args = ServiceArgs {
            workers: Some(4),
            ..ServiceArgs::default()
        };
        let base = FileSettings {
            workers: Some(2),
            device: Some("gpu0".to_owned()),
            ..FileSettings::default()
        };
        let config = args.resolve(base).unwrap();
        assert_eq!(config.workers, 4);
        assert_eq!(config.device, "gpu0");
    }

    #[test]
    fn invalid_settings_are_named() {
        let cases = [
            (
                FileSettings {
                    workers: Some(0),
                    ..Default::default()
                },
                "workers",
            ),
            (
                FileSettings {
                    listen: Some("nowhere".into()),
                    ..Default::default()
                },
                "listen",
            ),
            (
                FileSettings {
                    lease_secs: Some(-1.0),
                    ..Default::default()
                },
                "lease_secs",
            ),
            (
                FileSettings {
                    heartbeat_secs: Some(20.0),
                    ..Default::default()
                },
                "heartbeat_secs",
            ),
            (
                FileSettings {
                    max_attempts: Some(0),
                    ..Default::default()
                },
                "max_attempts",
            ),
            (
                FileSettings {
                    log_format: Some("xml".into()),
                    ..Default::default()
                },
                "log_format",
            ),
        ];
        for (settings, name) in cases {
            let message = format!("{:#}", settings.validate().unwrap_err());
            assert!(message.contains(name), "{name}: {message}");
        }
    }

    #[test]
    fn too_long_duration_states_the_limit() {
        let settings = FileSettings {
            retry_base_secs: Some(1e20),
            ..Default::default()
        };
        let message = format!("{:#}", settings.validate().unwrap_err());
        assert!(
            message.contains("retry_base_secs = 100000000000000000000"),
            "{message}"
        );
        assert!(message.contains("below 1e9"), "{message}");
    }

    #[test]
    fn unknown_file_key_is_rejected() {
        let error = toml::from_str::<FileSettings>("wokers = 2").unwrap_err();
        assert!(error.to_string().contains("wokers"), "{error}");
    }
}
