//! The window: sensor controls, the live chart with the threshold line, the alert list and
//! a status bar. The UI thread never waits: it sends commands to the pipeline and drains
//! its events, and repaints only when something arrives or the user acts.

mod launch;
mod panels;
mod profile;

use launch::{Attempt, launch_with_fallback};
pub use launch::{LaunchError, RendererChoice};

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use eframe::egui;
use temperature_alert::{Alert, parse_timestamp};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::{error, warn};

use crate::history::History;
use crate::local_cloud::engine::RuleTrace;
use crate::local_cloud::rules::Rule;
use crate::mqtt::LinkState;
use crate::paths::AppPaths;
use crate::pipeline::{Command, EventSink, Pipeline, PipelineEvent, TelemetryState};
use crate::sensor::{Clock, Reading};
use crate::settings::{Settings, SettingsStore};

/// Alerts kept in the list.
const MAX_ALERTS: usize = 500;
/// Time spent draining events per frame before drawing.
const DRAIN_BUDGET: Duration = Duration::from_millis(10);
/// Quiet time after the last change before settings are written.
const SAVE_DELAY: Duration = Duration::from_secs(1);

/// Settings, folders and runtime the window starts with.
pub struct AppInit {
    pub settings: Settings,
    pub store: SettingsStore,
    pub notices: Vec<String>,
    pub paths: AppPaths,
    pub runtime: tokio::runtime::Handle,
    pub clock: Clock,
    pub broker_port: Option<u16>,
}

/// An alert as drawn on the chart.
#[derive(Debug, Clone, Copy)]
struct Marker {
    time: f64,
    temperature: f64,
    kind: temperature_alert::AlertKind,
}

/// The eframe application.
pub struct SensorApp {
    settings: Settings,
    store: SettingsStore,
    unsaved_since: Option<Instant>,
    runtime: tokio::runtime::Handle,
    pipeline: Option<Pipeline>,
    events: mpsc::Receiver<PipelineEvent>,
    sink: Option<EventSink>,
    history: History,
    markers: Vec<Marker>,
    alerts: VecDeque<Alert>,
    link: LinkState,
    telemetry: TelemetryState,
    readings_sent: u64,
    last_reading: Option<Reading>,
    spike_ends_at: Option<OffsetDateTime>,
    last_trace: Option<RuleTrace>,
    /// The latest message the rules engine did not judge, kept until another one arrives,
    /// because the next reading replaces `last_trace` within a second.
    last_rejection: Option<RuleTrace>,
    notices: Vec<String>,
    last_error: Option<String>,
    rule_text: String,
    rule_error: Option<String>,
    follow_live: bool,
    profile: profile::ProfileState,
    /// Folder of the log files, for the "Open logs" button.
    log_dir: std::path::PathBuf,
}

impl SensorApp {
    /// Creates the window's state and starts the pipeline.
    pub fn new(ctx: &egui::Context, init: AppInit) -> Self {
        let AppInit {
            settings,
            store,
            notices,
            paths,
            runtime,
            clock,
            broker_port,
        } = init;
        let waker = ctx.clone();
        let (sink, events) = EventSink::new(move || waker.request_repaint());
        let mut broker = settings.broker;
        if let Some(port) = broker_port {
            broker.port = port;
        }
        let mut profile = profile::ProfileState::new(clock, paths.outbox_dir.clone(), broker);
        let started = {
            let _entered = runtime.enter();
            profile.start_pipeline(&settings, sink.clone())
        };
        runtime.spawn(close_on_termination(ctx.clone()));
        let mut app = Self {
            log_dir: paths.log_dir.clone(),
            rule_text: settings.rule_sql.clone(),
            settings,
            store,
            unsaved_since: None,
            runtime,
            pipeline: None,
            events,
            sink: Some(sink),
            history: History::default(),
            markers: Vec::new(),
            alerts: VecDeque::new(),
            link: LinkState::Connecting,
            telemetry: TelemetryState::Active,
            readings_sent: 0,
            last_reading: None,
            spike_ends_at: None,
            last_trace: None,
            last_rejection: None,
            notices,
            last_error: None,
            rule_error: None,
            follow_live: true,
            profile,
        };
        match started {
            Ok(pipeline) => {
                for alert in pipeline.past_alerts.iter().rev().take(MAX_ALERTS).rev() {
                    app.add_alert(alert.clone());
                }
                app.pipeline = Some(pipeline);
            }
            Err(message) => {
                error!(%message, "pipeline not started");
                app.last_error = Some(message);
            }
        }
        app
    }

    /// Alerts in the list, newest first.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter()
    }

    /// Whether a settings change waits to be written to disk.
    pub fn has_unsaved_settings(&self) -> bool {
        self.unsaved_since.is_some()
    }

    /// Readings published since start.
    pub fn readings_sent(&self) -> u64 {
        self.readings_sent
    }

    /// Sends a command to the running pipeline. Without one, the change is only kept in
    /// the settings, which the next start uses.
    fn send(&mut self, command: Command) {
        let Some(pipeline) = &self.pipeline else {
            return;
        };
        // A remote profile has no rules engine, and the panels say so next to those fields.
        let needs_rules_engine = matches!(command, Command::SetPolicy(_) | Command::SetRule(_));
        if !pipeline.send(command) && !needs_rules_engine {
            self.last_error = Some(
                "The sensor did not take the change because it is busy or stopped; press \
                 Reconnect to restart it."
                    .to_owned(),
            );
        }
    }

    fn settings_changed(&mut self) {
        self.unsaved_since = Some(Instant::now());
    }

    fn toggle_pause(&mut self) {
        let paused = self.telemetry == TelemetryState::Active;
        self.send(Command::SetPaused(paused));
    }

    fn spike(&mut self) {
        self.send(Command::Spike { start: None });
    }

    fn apply_rule(&mut self) {
        match Rule::parse(&self.rule_text) {
            Ok(rule) => {
                self.rule_error = None;
                rule.sql().clone_into(&mut self.settings.rule_sql);
                self.send(Command::SetRule(Box::new(rule)));
                self.settings_changed();
            }
            Err(error) => self.rule_error = Some(error.to_string()),
        }
    }

    fn drain_events(&mut self) {
        let started = Instant::now();
        while started.elapsed() < DRAIN_BUDGET {
            let Ok(event) = self.events.try_recv() else {
                break;
            };
            self.handle_event(event);
        }
    }

    fn handle_event(&mut self, event: PipelineEvent) {
        match event {
            PipelineEvent::Link(state) => self.link = state,
            PipelineEvent::ReadingSent(reading) => {
                self.readings_sent += 1;
                self.history
                    .push(unix_seconds(reading.timestamp), reading.temperature);
                self.last_reading = Some(reading);
            }
            PipelineEvent::Telemetry(state) => self.telemetry = state,
            PipelineEvent::Spike { ends_at } => self.spike_ends_at = ends_at,
            PipelineEvent::Alert(alert) => self.add_alert(alert),
            PipelineEvent::Trace(trace) => {
                if trace.outcome.reason().is_some() {
                    self.last_rejection = Some(trace.clone());
                }
                self.last_trace = Some(trace);
            }
            PipelineEvent::UnexpectedControl { payload } => {
                self.last_error = Some(format!(
                    "Ignored a control message that is not {{\"isTelemetryActive\": true|false}}: {payload}"
                ));
            }
            PipelineEvent::Error(message) => self.last_error = Some(message),
            PipelineEvent::ReadingSkipped { .. } | PipelineEvent::Finished { .. } => {}
        }
    }

    fn add_alert(&mut self, alert: Alert) {
        let time = alert
            .reading_timestamp
            .as_deref()
            .and_then(|text| parse_timestamp(text).ok())
            .or_else(|| parse_timestamp(&alert.alerted_at).ok());
        if let Some(time) = time {
            self.markers.push(Marker {
                time: unix_seconds(time),
                temperature: alert.temperature,
                kind: alert.kind,
            });
        }
        self.alerts.push_front(alert);
        self.alerts.truncate(MAX_ALERTS);
    }

    fn handle_keys(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (space, spike) = ctx.input(|input| {
            (
                input.key_pressed(egui::Key::Space),
                input.key_pressed(egui::Key::S),
            )
        });
        if space {
            self.toggle_pause();
        }
        if spike {
            self.spike();
        }
    }

    fn remember_window_size(&mut self, ctx: &egui::Context) {
        let (inner, outer) =
            ctx.input(|input| (input.viewport().inner_rect, input.viewport().outer_rect));
        let Some(inner) = inner else { return };
        let size = inner.size();
        let position = outer.map(|rect| rect.min);
        let window = &mut self.settings.window;
        let resized = (window.width - size.x).abs() > 1.0 || (window.height - size.y).abs() > 1.0;
        let moved = position.is_some_and(|p| window.x != Some(p.x) || window.y != Some(p.y));
        if resized || moved {
            window.width = size.x;
            window.height = size.y;
            if let Some(position) = position {
                window.x = Some(position.x);
                window.y = Some(position.y);
            }
            self.settings_changed();
        }
    }

    fn save_when_quiet(&mut self, ctx: &egui::Context) {
        let Some(since) = self.unsaved_since else {
            return;
        };
        let waited = since.elapsed();
        if waited < SAVE_DELAY {
            ctx.request_repaint_after(SAVE_DELAY.saturating_sub(waited));
            return;
        }
        self.unsaved_since = None;
        let store = self.store.clone();
        let settings = self.settings.clone();
        self.runtime.spawn_blocking(move || {
            if let Err(error) = store.save(&settings) {
                warn!(%error, "settings not saved");
            }
        });
    }

    fn dropped_events(&self) -> u64 {
        self.sink.as_ref().map_or(0, EventSink::dropped)
    }
}

impl eframe::App for SensorApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.drain_events();
        self.poll_profile_tasks();
        self.handle_keys(ctx);
        self.remember_window_size(ctx);
        self.save_when_quiet(ctx);
        if let Some(ends_at) = self.spike_ends_at {
            if ends_at <= OffsetDateTime::now_utc() {
                self.spike_ends_at = None;
            } else {
                // The spike countdown changes once a second even when no data arrives.
                ctx.request_repaint_after(Duration::from_secs(1));
            }
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.status_bar_ui(ui);
        self.controls_panel_ui(ui);
        self.alerts_panel_ui(ui);
        self.chart_panel_ui(ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        if let Err(error) = self.store.save(&self.settings) {
            warn!(%error, "settings not saved on exit");
        }
    }
}

fn unix_seconds(at: OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

/// Closes the window, which saves the settings, when the process is asked to stop
/// (Ctrl+C in the terminal, or SIGTERM on Unix).
async fn close_on_termination(ctx: egui::Context) {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("stop requested; closing the window");
    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    ctx.request_repaint();
}

/// Opens the window and runs until it is closed, trying the other renderer when the
/// first one cannot start.
pub fn run_window(
    runtime: &tokio::runtime::Runtime,
    paths: &AppPaths,
    store: SettingsStore,
    broker_port: Option<u16>,
    renderer: Option<RendererChoice>,
) -> anyhow::Result<()> {
    let lock = match paths.lock_instance() {
        Ok(lock) => lock,
        Err(error @ crate::paths::PathsError::AlreadyRunning { .. }) => {
            run_message_window("Sensor Emulator is already running", &error.to_string())?;
            return Err(error.into());
        }
        Err(error) => return Err(error.into()),
    };
    let loaded = store.load();
    for notice in &loaded.notices {
        tracing::warn!("{notice}");
    }
    let window = loaded.settings.window;
    let init = Cell::new(Some(AppInit {
        settings: loaded.settings,
        store,
        notices: loaded.notices,
        paths: paths.clone(),
        runtime: runtime.handle().clone(),
        clock: Clock::system(),
        broker_port,
    }));
    let result = launch_with_fallback(RendererChoice::order(renderer), |renderer| {
        let mut options = eframe::NativeOptions {
            viewport: viewport(window),
            ..Default::default()
        };
        renderer.configure(&mut options);
        tracing::info!(%renderer, "opening the window");
        let outcome = eframe::run_native(
            "Sensor Emulator",
            options,
            Box::new(|cc| match init.take() {
                Some(init) => Ok(Box::new(SensorApp::new(&cc.egui_ctx, init))),
                None => Err("the app was already started once".into()),
            }),
        );
        match outcome {
            Ok(()) => Attempt::Ran,
            // The app state is consumed once the app is created; a failure before that is
            // the renderer's.
            Err(error)
                if init.take().is_some_and(|unused| {
                    init.set(Some(unused));
                    true
                }) =>
            {
                Attempt::RendererFailed(error.to_string())
            }
            Err(error) => Attempt::AppFailed(error.to_string()),
        }
    });
    drop(lock);
    if let Err(error) = &result {
        // People who start the app from a shortcut have no terminal, so show the error in a window.
        let _ = run_message_window("Sensor Emulator cannot open its window", &error.to_string());
    }
    result.map_err(anyhow::Error::from)
}

fn viewport(window: crate::settings::WindowSettings) -> egui::ViewportBuilder {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Sensor Emulator")
        .with_inner_size([window.width, window.height])
        .with_min_inner_size([720.0, 480.0]);
    match eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icon.png")) {
        Ok(icon) => viewport = viewport.with_icon(icon),
        Err(error) => tracing::warn!(%error, "window icon not loaded"),
    }
    if let (Some(x), Some(y)) = (window.x, window.y) {
        viewport = viewport.with_position([x, y]);
    }
    viewport
}

/// Shows one message in a small window, for problems found before the app can start.
fn run_message_window(title: &str, message: &str) -> anyhow::Result<()> {
    eprintln!("{message}");
    let message = message.to_owned();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title)
            .with_inner_size([520.0, 160.0]),
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    eframe::run_ui_native(title, options, move |ui, _frame| {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.add_space(12.0);
            ui.label(&message);
            ui.add_space(12.0);
            if ui.button("Close").clicked() {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            }
        });
    })
    .map_err(|error| anyhow::anyhow!("cannot open the window: {error}"))
}
