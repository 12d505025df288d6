//! The connection profile: switching between Local, AWS IoT Core and a custom broker
//! without restarting, the profile form with native file dialogs and the connection kit
//! import, and the connection test. Slow work (loading files, starting a pipeline, the
//! doctor, file dialogs) runs on the tokio runtime and reports back through one-shot
//! channels that the UI polls each frame.

use std::path::PathBuf;

use eframe::egui::{self, Color32, RichText};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{MAX_ALERTS, SensorApp};
use crate::local_cloud::broker::BrokerHandle;
use crate::pipeline::{EventSink, Pipeline, PipelineConfig, RemoteTarget, Target};
use crate::sensor::Clock;
use crate::settings::{BrokerSettings, Profile, Settings, TopicSettings};
use crate::tls::doctor::{self, DoctorOptions, Report, Status};
use crate::tls::kit::{self, ConnectionKit};
use crate::tls::remote::RemoteProfile;

const PASSED_COLOR: Color32 = Color32::from_rgb(38, 140, 70);
const WARNING_COLOR: Color32 = Color32::from_rgb(200, 110, 10);
const FAILED_COLOR: Color32 = Color32::from_rgb(210, 45, 40);

/// A path field of the profile form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileField {
    AwsCertificate,
    AwsKey,
    AwsCa,
    CustomCa,
    CustomCertificate,
    CustomKey,
}

/// What a file dialog returned.
enum Picked {
    File(FileField, Option<PathBuf>),
    Kit(Option<Result<ConnectionKit, String>>),
}

/// Pipeline starts, connection tests and file dialogs in progress, and what the form
/// shows.
pub(super) struct ProfileState {
    clock: Clock,
    outbox_dir: PathBuf,
    /// The embedded broker's settings with the command line's port.
    broker: BrokerSettings,
    /// The embedded broker once started; rumqttd cannot stop, so it is reused.
    local_broker: Option<BrokerHandle>,
    starting: Option<oneshot::Receiver<Result<Pipeline, String>>>,
    testing: Option<oneshot::Receiver<Report>>,
    picking: Option<oneshot::Receiver<Picked>>,
    report: Option<Report>,
    kit_message: Option<Result<String, String>>,
    /// Whether the profile form window is open.
    pub form_open: bool,
}

impl ProfileState {
    pub fn new(clock: Clock, outbox_dir: PathBuf, broker: BrokerSettings) -> Self {
        Self {
            clock,
            outbox_dir,
            broker,
            local_broker: None,
            starting: None,
            testing: None,
            picking: None,
            report: None,
            kit_message: None,
            form_open: false,
        }
    }

    fn config(&self, settings: &Settings) -> PipelineConfig {
        PipelineConfig {
            sensor: settings.sensor.clone(),
            policy: settings.policy,
            rule_sql: settings.rule_sql.clone(),
            broker: self.broker,
            outbox_dir: self.outbox_dir.clone(),
            email_to: settings.email_to.clone(),
            seed: None,
            run_for: None,
        }
    }

    /// Starts the pipeline of the selected profile on the current runtime; the error is a
    /// message for the user.
    pub fn start_pipeline(
        &mut self,
        settings: &Settings,
        sink: EventSink,
    ) -> Result<Pipeline, String> {
        let pipeline = start(
            settings,
            self.config(settings),
            self.local_broker.clone(),
            self.clock.clone(),
            sink,
        )?;
        if let Some(broker) = &pipeline.broker {
            self.local_broker = Some(broker.clone());
        }
        Ok(pipeline)
    }

    /// Whether a pipeline is being started.
    pub fn is_starting(&self) -> bool {
        self.starting.is_some()
    }
}

/// Starts a pipeline for `settings.profile`, loading and checking TLS files first.
fn start(
    settings: &Settings,
    config: PipelineConfig,
    local_broker: Option<BrokerHandle>,
    clock: Clock,
    sink: EventSink,
) -> Result<Pipeline, String> {
    let target = match RemoteProfile::from_settings(settings, settings.profile) {
        None => Target::Local {
            broker: local_broker,
        },
        Some(remote) => {
            let prepared = RemoteTarget::prepare(
                remote,
                settings.transport.offline_queue,
                OffsetDateTime::now_utc(),
            )
            .map_err(|error| {
                format!(
                    "The {} profile cannot connect: {error}",
                    settings.profile.label()
                )
            })?;
            Target::Remote(Box::new(prepared))
        }
    };
    Pipeline::start_with(config, target, clock, sink).map_err(|error| match settings.profile {
        Profile::Local => format!("The local cloud did not start: {error}"),
        other => format!("The {} profile did not start: {error}", other.label()),
    })
}

impl SensorApp {
    /// Collects the results of background work; called every frame.
    pub(super) fn poll_profile_tasks(&mut self) {
        if let Some(receiver) = &mut self.profile.starting
            && let Ok(result) = receiver.try_recv()
        {
            self.profile.starting = None;
            self.pipeline_started(result);
        }
        if let Some(receiver) = &mut self.profile.testing
            && let Ok(report) = receiver.try_recv()
        {
            self.profile.testing = None;
            if let Some(pipeline) = &self.pipeline {
                pipeline.pause_device_link(false);
            }
            self.profile.report = Some(report);
        }
        if let Some(receiver) = &mut self.profile.picking
            && let Ok(picked) = receiver.try_recv()
        {
            self.profile.picking = None;
            self.apply_picked(picked);
        }
    }

    fn pipeline_started(&mut self, result: Result<Pipeline, String>) {
        match result {
            Ok(pipeline) => {
                if let Some(broker) = &pipeline.broker {
                    self.profile.local_broker = Some(broker.clone());
                }
                self.alerts.clear();
                self.markers.clear();
                for alert in pipeline.past_alerts.iter().rev().take(MAX_ALERTS).rev() {
                    self.add_alert(alert.clone());
                }
                self.last_error = None;
                self.pipeline = Some(pipeline);
            }
            Err(message) => {
                warn!(%message, "pipeline not started");
                self.last_error = Some(message);
            }
        }
    }

    /// Stops the running pipeline and starts the selected profile's in the background.
    pub(super) fn switch_profile(&mut self, ctx: &egui::Context) {
        let Some(sink) = self.sink.clone() else {
            return;
        };
        info!(profile = self.settings.profile.name(), "switching profile");
        self.pipeline = None;
        self.link = crate::mqtt::LinkState::Connecting;
        self.profile.report = None;
        let settings = self.settings.clone();
        let config = self.profile.config(&settings);
        let local_broker = self.profile.local_broker.clone();
        let clock = self.profile.clock.clone();
        let (sender, receiver) = oneshot::channel();
        let waker = ctx.clone();
        self.runtime.spawn_blocking(move || {
            let result = start(&settings, config, local_broker, clock, sink);
            let _ = sender.send(result);
            waker.request_repaint();
        });
        self.profile.starting = Some(receiver);
        self.settings_changed();
    }

    fn test_connection(&mut self, ctx: &egui::Context) {
        let profile = match self.settings.profile {
            Profile::Custom => Profile::Custom,
            Profile::Local | Profile::Aws => Profile::Aws,
        };
        let Some(remote) = RemoteProfile::from_settings(&self.settings, profile) else {
            return;
        };
        // The test connects with the same client id; a running connection would be closed
        // by the broker, so it waits until the test ends.
        if let Some(pipeline) = &self.pipeline
            && pipeline.remote.is_some()
        {
            pipeline.pause_device_link(true);
        }
        let (sender, receiver) = oneshot::channel();
        let waker = ctx.clone();
        self.runtime.spawn(async move {
            let report = doctor::run(&remote, &DoctorOptions::default()).await;
            let _ = sender.send(report);
            waker.request_repaint();
        });
        self.profile.report = None;
        self.profile.testing = Some(receiver);
    }

    fn pick_file(&mut self, field: FileField, ctx: &egui::Context) {
        let title = match field {
            FileField::AwsCertificate | FileField::CustomCertificate => "Device certificate",
            FileField::AwsKey | FileField::CustomKey => "Private key",
            FileField::AwsCa | FileField::CustomCa => "CA certificate",
        };
        let dialog = rfd::AsyncFileDialog::new()
            .set_title(title)
            .add_filter("PEM files", &["pem", "crt", "key", "cer"])
            .add_filter("All files", &["*"]);
        let (sender, receiver) = oneshot::channel();
        let waker = ctx.clone();
        self.runtime.spawn(async move {
            let path = dialog.pick_file().await.map(|file| file.path().to_owned());
            let _ = sender.send(Picked::File(field, path));
            waker.request_repaint();
        });
        self.profile.picking = Some(receiver);
    }

    fn pick_kit(&mut self, ctx: &egui::Context) {
        let dialog = rfd::AsyncFileDialog::new().set_title("Connection kit folder");
        let (sender, receiver) = oneshot::channel();
        let waker = ctx.clone();
        self.runtime.spawn(async move {
            let kit = dialog
                .pick_folder()
                .await
                .map(|folder| kit::import(folder.path()).map_err(|error| error.to_string()));
            let _ = sender.send(Picked::Kit(kit));
            waker.request_repaint();
        });
        self.profile.picking = Some(receiver);
    }

    fn apply_picked(&mut self, picked: Picked) {
        match picked {
            Picked::File(_, None) | Picked::Kit(None) => {}
            Picked::File(field, Some(path)) => {
                let aws = &mut self.settings.aws;
                let custom = &mut self.settings.custom;
                let target = match field {
                    FileField::AwsCertificate => &mut aws.certificate_file,
                    FileField::AwsKey => &mut aws.private_key_file,
                    FileField::AwsCa => &mut aws.ca_file,
                    FileField::CustomCa => &mut custom.ca_file,
                    FileField::CustomCertificate => &mut custom.certificate_file,
                    FileField::CustomKey => &mut custom.private_key_file,
                };
                *target = path;
                self.settings_changed();
            }
            Picked::Kit(Some(Ok(kit))) => {
                self.apply_kit(kit);
                self.settings_changed();
            }
            Picked::Kit(Some(Err(message))) => self.profile.kit_message = Some(Err(message)),
        }
    }

    /// Fills the AWS profile from an imported connection kit.
    pub(super) fn apply_kit(&mut self, kit: ConnectionKit) {
        let aws = &mut self.settings.aws;
        let mut filled = vec!["certificate", "private key"];
        aws.certificate_file = kit.certificate_file;
        aws.private_key_file = kit.private_key_file;
        match kit.ca_file {
            Some(path) => {
                aws.ca_file = path;
                filled.push("root CA");
            }
            None => aws.ca_file = PathBuf::new(),
        }
        if let Some(thing) = kit.thing_name {
            aws.thing_name = thing;
            filled.push("thing name");
        }
        if let Some(endpoint) = kit.endpoint {
            aws.endpoint = endpoint;
            filled.push("endpoint");
        }
        self.profile.kit_message = Some(Ok(format!("Filled in: {}.", filled.join(", "))));
    }

    /// The Connection section of the left panel: profile choice and its state.
    pub(super) fn connection_ui(&mut self, ui: &mut egui::Ui) {
        let mut selected = self.settings.profile;
        ui.horizontal(|ui| {
            let label = ui.label("Profile");
            egui::ComboBox::from_id_salt("profile")
                .selected_text(selected.label())
                .show_ui(ui, |ui| {
                    for profile in Profile::ALL {
                        ui.selectable_value(&mut selected, profile, profile.label());
                    }
                })
                .response
                .labelled_by(label.id);
        });
        if selected != self.settings.profile {
            self.settings.profile = selected;
            self.switch_profile(ui.ctx());
        }
        if let Some(remote) = self.pipeline.as_ref().and_then(|p| p.remote.as_ref()) {
            ui.label(format!("{} as {}", remote.address(), remote.client_id));
            let own_broker = self.profile.local_broker.as_ref().is_some_and(|broker| {
                let loopback = remote.host == "localhost"
                    || remote
                        .host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                loopback && broker.addr.port() == remote.port
            });
            if own_broker {
                ui.label(
                    egui::RichText::new(
                        "This is the app's own embedded broker, which keeps running after \
                         leaving the Local profile; no rules engine judges readings here.",
                    )
                    .small()
                    .color(egui::Color32::from_rgb(230, 120, 20)),
                );
            }
        }
        ui.horizontal(|ui| {
            if ui.button("Edit connection").clicked() {
                self.profile.form_open = true;
            }
            let reconnect = if self.pipeline.is_some() {
                "Reconnect"
            } else {
                "Connect"
            };
            if ui
                .add_enabled(!self.profile.is_starting(), egui::Button::new(reconnect))
                .on_hover_text("Starts the selected profile again with the settings in the form.")
                .clicked()
            {
                self.switch_profile(ui.ctx());
            }
        });
        if self.profile.is_starting() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Starting the profile");
            });
        }
    }

    /// The window with the remote profiles' settings and the connection test.
    pub(super) fn profile_window_ui(&mut self, ctx: &egui::Context) {
        if !self.profile.form_open {
            return;
        }
        let mut open = true;
        egui::Window::new("Connection profile")
            .open(&mut open)
            .default_width(560.0)
            .resizable(true)
            .show(ctx, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.profile_form_ui(ui));
            });
        self.profile.form_open = open;
    }

    fn profile_form_ui(&mut self, ui: &mut egui::Ui) {
        let form_profile = match self.settings.profile {
            Profile::Custom => Profile::Custom,
            Profile::Local | Profile::Aws => Profile::Aws,
        };
        ui.heading(form_profile.label());
        let changed = match form_profile {
            Profile::Custom => self.custom_form_ui(ui),
            Profile::Local | Profile::Aws => self.aws_form_ui(ui),
        };
        if changed {
            self.settings_changed();
        }
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            let testing = self.profile.testing.is_some();
            if ui
                .add_enabled(!testing, egui::Button::new("Test connection"))
                .clicked()
            {
                self.test_connection(ui.ctx());
            }
            if self.settings.profile == form_profile
                && ui
                    .add_enabled(
                        !self.profile.is_starting(),
                        egui::Button::new("Apply and connect"),
                    )
                    .clicked()
            {
                self.switch_profile(ui.ctx());
            }
            if self.settings.profile != form_profile
                && ui.button(format!("Use {}", form_profile.label())).clicked()
            {
                self.settings.profile = form_profile;
                self.switch_profile(ui.ctx());
            }
            if testing {
                ui.spinner();
                ui.label("Testing");
            }
        });
        if let Some(report) = &self.profile.report {
            ui.separator();
            report_ui(ui, report);
        }
    }

    fn aws_form_ui(&mut self, ui: &mut egui::Ui) -> bool {
        let mut changed = false;
        if ui
            .button("Import connection kit folder")
            .on_hover_text("Fills the paths, thing name and endpoint from the folder of the AWS IoT console's download.")
            .clicked()
        {
            self.pick_kit(ui.ctx());
        }
        match &self.profile.kit_message {
            Some(Ok(text)) => {
                ui.label(RichText::new(text).color(PASSED_COLOR));
            }
            Some(Err(text)) => {
                ui.label(RichText::new(text).color(FAILED_COLOR));
            }
            None => {}
        }
        let mut pick = None;
        let aws = &mut self.settings.aws;
        egui::Grid::new("aws_form").num_columns(2).show(ui, |ui| {
            changed |= labelled_text(
                ui,
                "Endpoint",
                &mut aws.endpoint,
                "prefix-ats.iot.region.amazonaws.com",
            );
            ui.end_row();
            let label = ui.label("Port");
            ui.horizontal(|ui| {
                changed |= ui
                    .radio_value(&mut aws.port, 8883, "8883")
                    .labelled_by(label.id)
                    .changed();
                changed |= ui
                    .radio_value(&mut aws.port, 443, "443 (ALPN x-amzn-mqtt-ca)")
                    .labelled_by(label.id)
                    .changed();
            });
            ui.end_row();
            changed |= labelled_text(ui, "Thing name", &mut aws.thing_name, "");
            ui.end_row();
            changed |= labelled_text(ui, "Client id", &mut aws.client_id, "the thing name");
            ui.end_row();
            changed |= labelled_text(ui, "Device id", &mut aws.device_id, "the thing name");
            ui.end_row();
            pick = pick.or(path_row(
                ui,
                "Certificate",
                &aws.certificate_file,
                "",
                FileField::AwsCertificate,
            ));
            ui.end_row();
            pick = pick.or(path_row(
                ui,
                "Private key",
                &aws.private_key_file,
                "",
                FileField::AwsKey,
            ));
            ui.end_row();
            pick = pick.or(path_row(
                ui,
                "CA file",
                &aws.ca_file,
                "built-in Amazon Root CA 1 and 3",
                FileField::AwsCa,
            ));
            ui.end_row();
            changed |= topics_ui(ui, &mut aws.topics);
        });
        if !self.settings.aws.ca_file.as_os_str().is_empty()
            && ui.small_button("Use the built-in Amazon roots").clicked()
        {
            self.settings.aws.ca_file = PathBuf::new();
            changed = true;
        }
        if let Some(field) = pick {
            self.pick_file(field, ui.ctx());
        }
        changed
    }

    fn custom_form_ui(&mut self, ui: &mut egui::Ui) -> bool {
        let mut changed = false;
        let mut pick = None;
        let custom = &mut self.settings.custom;
        egui::Grid::new("custom_form")
            .num_columns(2)
            .show(ui, |ui| {
                changed |= labelled_text(ui, "Host", &mut custom.host, "broker.example.com");
                ui.end_row();
                let label = ui.label("Port");
                changed |= ui
                    .add(egui::DragValue::new(&mut custom.port).range(1..=65_535))
                    .labelled_by(label.id)
                    .changed();
                ui.end_row();
                changed |= labelled_text(ui, "Client id", &mut custom.client_id, "");
                ui.end_row();
                changed |= labelled_text(
                    ui,
                    "Device id",
                    &mut custom.device_id,
                    "the sensor's device id",
                );
                ui.end_row();
                changed |= labelled_text(ui, "User name", &mut custom.username, "none");
                ui.end_row();
                let label = ui.label("Password");
                changed |= ui
                    .add(egui::TextEdit::singleline(&mut custom.password).password(true))
                    .labelled_by(label.id)
                    .changed();
                ui.end_row();
                ui.label("TLS");
                changed |= ui.checkbox(&mut custom.tls, "Use TLS").changed();
                ui.end_row();
                if custom.tls {
                    pick = pick.or(path_row(
                        ui,
                        "CA file",
                        &custom.ca_file,
                        "",
                        FileField::CustomCa,
                    ));
                    ui.end_row();
                    pick = pick.or(path_row(
                        ui,
                        "Certificate",
                        &custom.certificate_file,
                        "none",
                        FileField::CustomCertificate,
                    ));
                    ui.end_row();
                    pick = pick.or(path_row(
                        ui,
                        "Private key",
                        &custom.private_key_file,
                        "none",
                        FileField::CustomKey,
                    ));
                    ui.end_row();
                }
                changed |= topics_ui(ui, &mut custom.topics);
            });
        if let Some(field) = pick {
            self.pick_file(field, ui.ctx());
        }
        changed
    }

    /// The transport part of the status bar.
    pub(super) fn transport_status_ui(&self, ui: &mut egui::Ui) {
        let Some(pipeline) = &self.pipeline else {
            let text = if self.profile.is_starting() {
                "Starting the profile"
            } else {
                "Not connected"
            };
            ui.label(RichText::new(text).color(FAILED_COLOR));
            return;
        };
        let status = pipeline.device_status();
        match &pipeline.remote {
            Some(remote) => {
                ui.label(format!(
                    "{} {}",
                    self.settings.profile.label(),
                    remote.address()
                ));
            }
            None => {
                if let Some(broker) = &pipeline.broker {
                    ui.label(format!("Broker mqtt://{}", broker.addr))
                        .on_hover_text(
                            "Embedded MQTT broker; other MQTT clients can connect here.",
                        );
                    if broker.fell_back {
                        ui.label(RichText::new("(1883 was taken)").weak());
                    }
                }
            }
        }
        ui.separator();
        let color = match status.state {
            crate::mqtt::LinkState::Connected => PASSED_COLOR,
            crate::mqtt::LinkState::Stopped { .. } => FAILED_COLOR,
            _ => WARNING_COLOR,
        };
        ui.label(RichText::new(format!("MQTT {}", self.link.label())).color(color));
        if let Some(round_trip) = status.round_trip {
            ui.separator();
            ui.label(format!("RTT {} ms", round_trip.as_millis()))
                .on_hover_text("Round-trip time of the last acknowledged publish");
        }
        ui.separator();
        ui.label(format!("Queue {}", status.queued))
            .on_hover_text("Readings waiting to be sent or acknowledged");
        if status.dropped > 0 {
            ui.label(
                RichText::new(format!("({} dropped, queue full)", status.dropped))
                    .color(FAILED_COLOR),
            );
        }
        if let Some(error) = &status.last_error
            && status.state == crate::mqtt::LinkState::Connected
        {
            ui.separator();
            ui.label(RichText::new(format!("Last error: {error}")).weak());
        }
    }
}

/// A label and a one-line text field named by it, with `hint` shown while it is empty.
fn labelled_text(ui: &mut egui::Ui, name: &str, text: &mut String, hint: &str) -> bool {
    let label = ui.label(name);
    ui.add(
        egui::TextEdit::singleline(text)
            .hint_text(hint)
            .desired_width(320.0),
    )
    .labelled_by(label.id)
    .changed()
}

/// A path, its Choose button and its placeholder; returns the field to pick when clicked.
fn path_row(
    ui: &mut egui::Ui,
    name: &str,
    path: &std::path::Path,
    unset: &str,
    field: FileField,
) -> Option<FileField> {
    let label = ui.label(name);
    let mut clicked = false;
    ui.horizontal(|ui| {
        clicked = ui
            .button("Choose")
            .labelled_by(label.id)
            .on_hover_text("Opens a file dialog")
            .clicked();
        if path.as_os_str().is_empty() {
            let text = if unset.is_empty() { "not set" } else { unset };
            ui.label(RichText::new(text).weak());
        } else {
            ui.label(path.display().to_string());
        }
    });
    clicked.then_some(field)
}

fn topics_ui(ui: &mut egui::Ui, topics: &mut TopicSettings) -> bool {
    let mut changed = labelled_text(ui, "Telemetry topic", &mut topics.telemetry, "");
    ui.end_row();
    changed |= labelled_text(ui, "Control topic", &mut topics.control, "");
    ui.end_row();
    changed |= labelled_text(ui, "Alerts topic", &mut topics.alerts, "");
    ui.end_row();
    changed
}

/// Draws a doctor report: one row per step with its status, detail and fix.
fn report_ui(ui: &mut egui::Ui, report: &Report) {
    ui.label(RichText::new(&report.target).strong());
    egui::Grid::new("doctor_report")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            for result in &report.steps {
                let color = match result.status {
                    Status::Passed => PASSED_COLOR,
                    Status::Warning => WARNING_COLOR,
                    Status::Failed => FAILED_COLOR,
                    Status::Skipped => ui.visuals().weak_text_color(),
                };
                ui.label(RichText::new(result.status.label()).color(color).strong());
                ui.vertical(|ui| {
                    ui.label(RichText::new(result.step.title()).strong());
                    ui.label(&result.detail);
                    if !result.fix.is_empty() {
                        ui.label(RichText::new(format!("Fix: {}", result.fix)).color(color));
                    }
                });
                ui.end_row();
            }
        });
    let summary = if report.passed() {
        RichText::new("Every step passed or warned; the profile can connect.").color(PASSED_COLOR)
    } else {
        RichText::new("The connection check failed; fix the first failed step and test again.")
            .color(FAILED_COLOR)
    };
    ui.label(summary);
}
