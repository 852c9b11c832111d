//! Command line: parse flags (the target's own, and those Mage passes a destination),
//! decide whether Mage mode is on (see `mage`), set up logging, load the config, run,
//! and turn any error into one line on stderr and a non-zero exit (in Mage mode also a
//! log line whose `tags.error` Mage shows).

use std::fmt;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use target_s3::config::{Config, Source};
use target_s3::error::{Error, Result};
use target_s3::mage;
use target_s3::target;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Lands a Singer tap's streams in Amazon S3 or an S3-compatible store as CSV, JSONL or
/// Parquet objects; writes STATE to stdout only once the records it covers are stored.
#[derive(Parser, Debug)]
#[command(name = "target-s3", version)]
struct Cli {
    /// JSON config file, or ENV for TARGET_S3_<KEY> variables; repeat to merge several
    /// (later keys win).
    #[arg(long = "config", value_name = "FILE|ENV")]
    config: Vec<PathBuf>,

    /// The config as JSON text (as Mage passes it); merged after --config.
    #[arg(long = "config_json", value_name = "JSON")]
    config_json: Option<String>,

    /// Read Singer messages from FILE instead of stdin.
    #[arg(long, visible_alias = "input_file_path", value_name = "FILE")]
    input: Option<PathBuf>,

    /// Write each STATE to FILE (replacing what it held) instead of stdout.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,

    /// Log format on stderr: text, or json (one object a line, as Singer SDK plugins
    /// log for Meltano); overrides the log_format setting.
    #[arg(long = "log-format", value_enum)]
    log_format: Option<LogFormat>,

    /// Mage: with 1, logs go to stdout as JSON lines of type LOG.
    #[arg(long = "log_to_stdout", value_name = "0|1")]
    log_to_stdout: Option<u8>,

    /// Mage: check the endpoint, credentials and bucket, then exit.
    #[arg(long = "test_connection")]
    test_connection: bool,

    /// Mage: print the config template and exit.
    #[arg(long = "show_templates")]
    show_templates: bool,

    /// Mage: accepted and not used.
    #[arg(long, value_name = "JSON", hide = true)]
    settings: Option<String>,

    /// Mage: the stream catalog; in Mage mode its selected columns and their types are
    /// what is written (the streams still come from SCHEMA messages).
    #[arg(long = "catalog_json", value_name = "JSON", hide = true)]
    catalog_json: Option<String>,

    /// Describe the target and every setting, and exit.
    #[arg(long)]
    about: bool,

    /// Format of --about.
    #[arg(long, value_enum, default_value = "json", requires = "about")]
    format: AboutFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AboutFormat {
    Json,
    Markdown,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.about {
        let text = match cli.format {
            AboutFormat::Json => format!("{:#}\n", target_s3::config::about()),
            AboutFormat::Markdown => target_s3::config::about_markdown(),
        };
        return print_out(&text);
    }
    if cli.show_templates {
        return print_out(&format!("{}\n", target_s3::config::template()));
    }
    let logs_to_stdout = cli.log_to_stdout == Some(1);
    let settings = merged_settings(&cli);
    let mage = mage::mode(settings.as_ref().ok(), invocation(&cli));
    let log_json = log_format(&cli, settings.as_ref().ok()) == LogFormat::Json;
    init_logging(log_json, logs_to_stdout, mage);
    match settings.and_then(|s| run(&cli, s, mage, logs_to_stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = error.to_string().replace('\n', " ");
            if mage && cli.test_connection {
                // Mage's UI reads a failed connection test's reason from the stderr
                // line that starts with ERROR: the JSON object's tags.error.
                let line = log_line("ERROR", &message, true, error_tags(&message));
                let _ = writeln!(io::stderr(), "ERROR {line}");
            } else if logs_to_stdout {
                tracing::error!(error = %message, "{message}");
            } else if log_json && tracing::enabled!(tracing::Level::ERROR) {
                // The one error line, as a log line Meltano shows at [error].
                tracing::error!("{message}");
                return ExitCode::from(error.exit_code());
            }
            // Not eprintln!: in Mage mode stderr is Mage's pipe, which Mage closes once
            // it has read an error line, and a failed write must not become a panic.
            let _ = writeln!(io::stderr(), "target-s3: error: {message}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The flags that tell whether Mage's runner called (see `mage::Invocation`).
fn invocation(cli: &Cli) -> mage::Invocation {
    mage::Invocation {
        log_to_stdout: cli.log_to_stdout == Some(1),
        input_file: cli.input.is_some(),
        config_json: cli.config_json.is_some(),
        test_connection: cli.test_connection,
    }
}

fn merged_settings(cli: &Cli) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut sources: Vec<Source> = cli.config.iter().map(|p| Source::from_flag(p)).collect();
    sources.extend(cli.config_json.clone().map(Source::Json));
    if sources.is_empty() {
        return Err(Error::Config(
            "no settings: give --config FILE (or --config ENV, or --config_json JSON)".into(),
        ));
    }
    target_s3::config::merge(&sources)
}

/// Prints `text` on stdout; a closed stdout is a failure, not a panic.
fn print_out(text: &str) -> ExitCode {
    match io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The `--log-format` flag, else the `log_format` setting (checked in full later, with
/// the other settings), else text.
fn log_format(
    cli: &Cli,
    settings: Option<&serde_json::Map<String, serde_json::Value>>,
) -> LogFormat {
    if let Some(format) = cli.log_format {
        return format;
    }
    let setting = settings.and_then(|s| s.get("log_format")?.as_str().map(str::to_owned));
    match setting {
        Some(word) if word.eq_ignore_ascii_case("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

fn init_logging(json: bool, to_stdout: bool, mage: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .log_internal_errors(false);
    if to_stdout {
        builder
            .event_format(JsonLog::Mage { epoch: mage })
            .with_writer(LogOut::Stdout)
            .init();
    } else if json {
        builder
            .event_format(JsonLog::Sdk)
            .with_writer(LogOut::Stderr)
            .init();
    } else if std::env::var_os("MELTANO_PROJECT_ROOT").is_some() {
        // Meltano puts its own timestamp on every line it relays.
        builder
            .with_writer(LogOut::Stderr)
            .with_target(false)
            .with_ansi(false)
            .without_time()
            .init();
    } else {
        builder
            .with_writer(LogOut::Stderr)
            .with_target(false)
            .with_ansi(io::stderr().is_terminal())
            .init();
    }
}

/// RUST_LOG, else INFO. The closing summary is shown whenever warnings are: only a
/// filter for errors alone (or nothing) hides it.
fn log_filter() -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if filter.max_level_hint() < Some(LevelFilter::WARN) {
        return filter;
    }
    match format!("{}=info", target::SUMMARY).parse() {
        Ok(summary) => filter.add_directive(summary),
        Err(_) => filter,
    }
}

/// Where log lines go. Logging never fails or ends the run: once a write fails (a
/// closed pipe, say), logging is off for the rest of the run.
#[derive(Clone, Copy)]
enum LogOut {
    Stdout,
    Stderr,
}

static LOGGING_OFF: AtomicBool = AtomicBool::new(false);

impl<'a> MakeWriter<'a> for LogOut {
    type Writer = LogOut;

    fn make_writer(&'a self) -> LogOut {
        *self
    }
}

impl Write for LogOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if LOGGING_OFF.load(Ordering::Relaxed) {
            return Ok(data.len());
        }
        let written = match self {
            LogOut::Stdout => io::stdout().lock().write_all(data),
            LogOut::Stderr => io::stderr().lock().write_all(data),
        };
        if written.is_err() {
            LOGGING_OFF.store(true, Ordering::Relaxed);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn run(
    cli: &Cli,
    settings: serde_json::Map<String, serde_json::Value>,
    mage: bool,
    logs_to_stdout: bool,
) -> Result<()> {
    let settings = match mage {
        true => mage::settings(settings, cli.test_connection),
        false => settings,
    };
    let (mut config, warnings) = Config::from_map(&settings)?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    if cli.test_connection {
        target::test_connection(&config)?;
        tracing::info!("connection to bucket {:?} checked", config.bucket);
        return Ok(());
    }
    if let Some(text) = cli.catalog_json.as_deref().filter(|_| config.mage) {
        let catalog = mage::Catalog::parse(text).map_err(Error::Config)?;
        config.types.catalog = Some(Arc::new(catalog));
    }
    let input: Box<dyn Read + Send> = match &cli.input {
        Some(path) => Box::new(File::open(path).map_err(|e| {
            Error::Config(format!("cannot open input file {}: {e}", path.display()))
        })?),
        None => Box::new(io::stdin()),
    };
    let output: Box<dyn Write> = match &cli.state {
        Some(path) => Box::new(StateFile::new(path)),
        None if logs_to_stdout => Box::new(LockedStdout),
        None => Box::new(io::stdout().lock()),
    };
    target::run(&config, input, output)?;
    Ok(())
}

/// STATE lines to stdout, each written whole while the logger may write there too.
struct LockedStdout;

impl Write for LockedStdout {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        io::stdout().lock().write_all(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

/// `--state FILE`: each STATE replaces the file's contents, atomically (a temporary file
/// renamed over it), so the file always holds one whole, latest state.
struct StateFile {
    path: PathBuf,
    pending: Vec<u8>,
}

impl StateFile {
    fn new(path: &Path) -> StateFile {
        StateFile {
            path: path.to_owned(),
            pending: Vec::new(),
        }
    }
}

impl Write for StateFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".partial");
        let replaced = std::fs::write(&temporary, &self.pending)
            .and_then(|()| std::fs::rename(&temporary, &self.path));
        let at = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", self.path.display()));
        replaced.map_err(at)?;
        self.pending.clear();
        Ok(())
    }
}

/// Log lines as JSON objects, one a line, in one of two forms.
enum JsonLog {
    /// As Mage reads them: `{"type": "LOG", "level": …, "message": …, "tags": {},
    /// "timestamp": …}`. The timestamp is RFC 3339 text, or with `epoch` (Mage mode)
    /// epoch seconds (Mage's runner reads a number there).
    Mage { epoch: bool },
    /// As Singer SDK plugins write them with structured logging, the form Meltano
    /// parses (and then shows at the line's own level): `level`, `pid`, `logger_name`,
    /// `ts` (epoch seconds), `thread_name`, `app_name`, `stream_name`, `message`,
    /// `extra`.
    Sdk,
}

impl<S, N> FormatEvent<S, N> for JsonLog
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let line = match self {
            JsonLog::Mage { epoch } => {
                let level = metadata.level().as_str();
                log_line(level, &fields.message, *epoch, fields.tags)
            }
            JsonLog::Sdk => sdk_line(metadata, fields),
        };
        writeln!(writer, "{line}")
    }
}

/// One log line in the Singer SDK's structured form (see `JsonLog::Sdk`).
fn sdk_line(metadata: &tracing::Metadata, mut fields: Fields) -> serde_json::Value {
    // Python's level names, which Meltano maps to its own.
    let level = match *metadata.level() {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warning",
        tracing::Level::INFO => "info",
        _ => "debug",
    };
    let now = chrono::Utc::now();
    serde_json::json!({
        "level": level,
        "pid": std::process::id(),
        "logger_name": metadata.target(),
        "ts": now.timestamp_micros() as f64 / 1e6,
        "thread_name": std::thread::current().name().unwrap_or("main"),
        "app_name": "target-s3",
        "stream_name": fields.tags.remove("stream"),
        "message": fields.message,
        "extra": fields.tags,
    })
}

/// One JSON log line.
fn log_line(
    level: &str,
    message: &str,
    epoch: bool,
    tags: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let now = chrono::Utc::now();
    let timestamp = match epoch {
        true => serde_json::json!(now.timestamp_micros() as f64 / 1e6),
        false => serde_json::json!(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    };
    serde_json::json!({
        "type": "LOG",
        "level": level,
        "message": message,
        "tags": tags,
        "timestamp": timestamp,
    })
}

/// The tags of a failure's log line: Mage's UI shows `tags.error`.
fn error_tags(message: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut tags = serde_json::Map::new();
    tags.insert("error".into(), message.into());
    tags
}

#[derive(Default)]
struct Fields {
    message: String,
    tags: serde_json::Map<String, serde_json::Value>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.tags
                .insert(field.name().to_owned(), format!("{value:?}").into());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.tags.insert(field.name().to_owned(), value.into());
        }
    }
}
