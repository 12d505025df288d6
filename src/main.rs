//! Command line of Sensor Emulator: opens the window, runs headless, or checks a remote
//! profile's connection.

// A release build on Windows is a GUI program, so opening the window shows no console.
// `headless` started from a terminal attaches to that terminal instead.
#![cfg_attr(all(windows, not(debug_assertions)), windows_subsystem = "windows")]

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use sensor_emulator::paths::{AppPaths, DATA_DIR_ENV};
use sensor_emulator::settings::SettingsStore;
use sensor_emulator::{app, doctor, headless};

/// Temperature sensor emulator and alert monitor for AWS IoT Core, with an embedded local
/// cloud.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Folder for settings, outbox and logs, instead of the operating system's folders.
    #[arg(long, global = true, env = DATA_DIR_ENV, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Port of the embedded MQTT broker (0 picks a free one); overrides the saved setting.
    #[arg(long, global = true, value_name = "PORT")]
    broker_port: Option<u16>,
    /// Renderer of the window: wgpu (default on Windows, Direct3D 12) or glow (OpenGL,
    /// default elsewhere). The other one is tried when the first cannot start.
    #[arg(long, value_enum)]
    renderer: Option<app::RendererChoice>,
    #[command(subcommand)]
    command: Option<Mode>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Run without a window and print readings and alerts as JSON lines.
    Headless(headless::HeadlessArgs),
    /// Check the AWS IoT Core or custom broker profile step by step, from its files to one
    /// published reading, and print what to fix.
    Doctor(doctor::DoctorArgs),
}

fn main() -> ExitCode {
    attach_parent_console();
    let cli = Cli::parse();
    let paths = match AppPaths::resolve(cli.data_dir.as_deref()) {
        Ok(paths) => paths,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let _log_guard = init_tracing(&paths.log_dir);
    // rustls needs one process-wide crypto provider; `ring` builds on every target we ship,
    // Windows on Arm included.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(cli, &paths) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, paths: &AppPaths) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sensor-emulator-io")
        .enable_all()
        .build()?;
    let store = SettingsStore::new(paths.settings_file.clone());
    match cli.command {
        Some(Mode::Headless(args)) => {
            let _lock = paths.lock_instance()?;
            let loaded = store.load();
            for notice in &loaded.notices {
                eprintln!("warning: {notice}");
            }
            runtime.block_on(headless::run(args, loaded.settings, paths, cli.broker_port))
        }
        Some(Mode::Doctor(args)) => {
            let loaded = store.load();
            for notice in &loaded.notices {
                eprintln!("warning: {notice}");
            }
            runtime.block_on(doctor::run(args, &loaded.settings))
        }
        None => app::run_window(&runtime, paths, store, cli.broker_port, cli.renderer),
    }
}

/// Log levels when `RUST_LOG` is unset. rumqttd is silenced because it logs every client
/// that disconnects as an error, the app's own start-up probe included. The app checks the
/// broker itself and reports its failures.
const DEFAULT_LOG_FILTER: &str = "info,rumqttd=off,rumqttc=warn";

/// Logs to standard error and to a daily file in `log_dir`, keeping a week of files. The
/// returned guard flushes the file when dropped; `None` means the file could not be
/// opened and only standard error is used.
fn init_tracing(log_dir: &Path) -> Option<WorkerGuard> {
    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter());
    // The appender lists the folder to prune old files, which fails while it is missing.
    let _ = std::fs::create_dir_all(log_dir);
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("sensor-emulator")
        .filename_suffix("log")
        .max_log_files(7)
        .build(log_dir);
    let (file_layer, guard, file_error) = match appender {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_filter(filter());
            (Some(layer), Some(guard), None)
        }
        Err(error) => (None, None, Some(error)),
    };
    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .init();
    if let Some(error) = file_error {
        tracing::warn!(%error, dir = %log_dir.display(), "log file not opened; logging to standard error only");
    }
    guard
}

/// Lets a GUI-subsystem program print to the terminal it was started from, so that
/// `headless`, `--help` and errors show there. Without a parent console it does nothing.
#[cfg(windows)]
#[allow(unsafe_code)]
fn attach_parent_console() {
    use windows_sys::Win32::System::Console::{ATTACH_PARENT_PROCESS, AttachConsole};
    // SAFETY: AttachConsole takes a process id by value and only changes which console the
    // standard handles refer to. It fails harmlessly when there is no parent console.
    unsafe {
        AttachConsole(ATTACH_PARENT_PROCESS);
    }
}

#[cfg(not(windows))]
fn attach_parent_console() {}
