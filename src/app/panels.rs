//! The window's panels, one `*_ui` function each.

use eframe::egui::{self, Color32, RichText};
use egui_plot::{Corner, HLine, Legend, Line, LineStyle, MarkerShape, Plot, PlotPoints, Points};
use temperature_alert::{AlertKind, AlertMode};

use super::{SensorApp, unix_seconds};
use crate::history::split_at_gaps;
use crate::local_cloud::engine::TraceOutcome;
use crate::pipeline::{Command, Pipeline, TelemetryState};
use crate::sensor::{
    INTERVAL_RANGE_MS, NOISE_RANGE, SETPOINT_RANGE, SPIKE_DELTA_RANGE, SPIKE_SECONDS_RANGE,
};

const RAISED_COLOR: Color32 = Color32::from_rgb(220, 50, 47);
const CLEARED_COLOR: Color32 = Color32::from_rgb(38, 160, 80);
const TEMPERATURE_COLOR: Color32 = Color32::from_rgb(90, 170, 255);
const THRESHOLD_COLOR: Color32 = Color32::from_rgb(230, 120, 20);
/// Seconds of history shown while the chart follows live data.
const LIVE_WINDOW_SECONDS: f64 = 120.0;

impl SensorApp {
    pub(super) fn status_bar_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                self.transport_status_ui(ui);
                ui.separator();
                ui.label(format!("Readings: {}", self.readings_sent))
                    .on_hover_text(
                        "Readings made by the sensor; Queue counts those not yet acknowledged.",
                    );
                ui.separator();
                if self.pipeline.is_some() {
                    ui.label(telemetry_label(self.telemetry));
                } else {
                    ui.label(
                        RichText::new("No readings: the profile has not started")
                            .color(THRESHOLD_COLOR),
                    );
                }
                if let Some(pipeline) = self.pipeline.as_ref().filter(|p| p.is_local()) {
                    ui.separator();
                    let outbox = pipeline.outbox_dir.clone();
                    ui.label(format!("Outbox {}", outbox.display()));
                    if ui.button("Open outbox").clicked()
                        && let Err(error) = open::that_detached(&outbox)
                    {
                        self.last_error = Some(format!(
                            "No file manager opened {} ({error}); open the folder yourself.",
                            outbox.display()
                        ));
                    }
                }
                ui.separator();
                if ui
                    .button("Open logs")
                    .on_hover_text(self.log_dir.display().to_string())
                    .clicked()
                    && let Err(error) = open::that_detached(&self.log_dir)
                {
                    self.last_error = Some(format!(
                        "No file manager opened {} ({error}); open the folder yourself.",
                        self.log_dir.display()
                    ));
                }
                let dropped = self.dropped_events();
                if dropped > 0 {
                    ui.separator();
                    ui.label(
                        RichText::new(format!("{dropped} chart events dropped"))
                            .color(THRESHOLD_COLOR),
                    );
                }
            });
        });
    }

    pub(super) fn controls_panel_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::left("controls")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.notices_ui(ui);
                    ui.heading("Connection");
                    self.connection_ui(ui);
                    ui.separator();
                    ui.heading("Sensor");
                    self.sensor_ui(ui);
                    ui.separator();
                    ui.heading("Alert policy");
                    self.policy_ui(ui);
                    ui.separator();
                    ui.heading("Topic rule");
                    self.rule_ui(ui);
                });
            });
        self.profile_window_ui(ui.ctx());
    }

    fn notices_ui(&mut self, ui: &mut egui::Ui) {
        let mut dismissed = None;
        for (index, notice) in self.notices.iter().enumerate() {
            egui::Frame::group(ui.style())
                .fill(Color32::from_rgb(255, 243, 205))
                .show(ui, |ui| {
                    ui.label(RichText::new(notice).color(Color32::from_rgb(90, 60, 0)));
                    if ui.small_button("Dismiss").clicked() {
                        dismissed = Some(index);
                    }
                });
        }
        if let Some(index) = dismissed {
            self.notices.remove(index);
        }
        if let Some(message) = self.last_error.clone() {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.label(RichText::new(message).color(RAISED_COLOR));
                if ui.small_button("Dismiss").clicked() {
                    self.last_error = None;
                }
            });
        }
    }

    fn sensor_ui(&mut self, ui: &mut egui::Ui) {
        let mut changed = false;
        let profile_note = profile_device_id(&self.settings).map(|device_id| {
            let profile = self.settings.profile.label();
            format!("The {profile} profile sends deviceId \"{device_id}\" instead.")
        });
        let sensor = &mut self.settings.sensor;
        let setpoint = egui::Slider::new(&mut sensor.setpoint, SETPOINT_RANGE)
            .max_decimals(1)
            .suffix(" °C");
        changed |= labelled(ui, "Setpoint", setpoint).changed();
        let noise = egui::Slider::new(&mut sensor.noise_std_dev, NOISE_RANGE)
            .max_decimals(2)
            .suffix(" °C");
        changed |= labelled(ui, "Noise, standard deviation", noise).changed();
        let interval = egui::Slider::new(&mut sensor.interval_ms, INTERVAL_RANGE_MS)
            .logarithmic(true)
            .suffix(" ms");
        changed |= labelled(ui, "Publish interval", interval).changed();
        ui.horizontal(|ui| {
            let size = egui::DragValue::new(&mut sensor.spike_delta)
                .range(SPIKE_DELTA_RANGE)
                .speed(0.5)
                .suffix(" °C");
            changed |= labelled(ui, "Spike size", size).changed();
            let length = egui::DragValue::new(&mut sensor.spike_seconds)
                .range(SPIKE_SECONDS_RANGE)
                .speed(0.5)
                .suffix(" s");
            changed |= labelled(ui, "lasting", length).changed();
        });
        ui.horizontal(|ui| {
            let device = egui::TextEdit::singleline(&mut sensor.device_id);
            changed |= labelled(ui, "Device id", device).lost_focus();
        });
        if let Some(note) = &profile_note {
            ui.label(RichText::new(note).weak());
        }
        changed |= ui
            .checkbox(
                &mut sensor.numbers_as_strings,
                "Send numbers as strings (like the tutorial)",
            )
            .changed();
        if changed {
            let mut sensor = self.settings.sensor.clone();
            sensor.clamp_to_ranges();
            self.settings.sensor = sensor.clone();
            self.send(Command::UpdateSensor(sensor));
            self.settings_changed();
        }
        ui.add_space(6.0);
        self.actions_ui(ui);
    }

    fn actions_ui(&mut self, ui: &mut egui::Ui) {
        // Without a running pipeline the buttons would do nothing.
        ui.add_enabled_ui(self.pipeline.is_some(), |ui| self.action_buttons_ui(ui));
        self.spike_status_ui(ui);
    }

    fn action_buttons_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let pause_label = if self.telemetry == TelemetryState::Active {
                "Pause"
            } else {
                "Resume"
            };
            if ui.button(pause_label).on_hover_text("Space").clicked() {
                self.toggle_pause();
            }
            if ui
                .button("Spike")
                .on_hover_text("S: add the spike size for the spike length")
                .clicked()
            {
                self.spike();
            }
            if self.spike_ends_at.is_some() && ui.button("End spike").clicked() {
                self.send(Command::CancelSpike);
            }
        });
    }

    fn spike_status_ui(&mut self, ui: &mut egui::Ui) {
        if let Some(ends_at) = self.spike_ends_at {
            let left = (ends_at - time::OffsetDateTime::now_utc())
                .whole_seconds()
                .max(0);
            ui.label(RichText::new(format!("Spike running, {left} s left")).color(THRESHOLD_COLOR));
        }
        if let Some(reading) = &self.last_reading {
            ui.label(format!(
                "Last reading #{}: {:.2} °C, {} %, {:.1} hPa",
                reading.seq, reading.temperature, reading.humidity, reading.pressure
            ));
        }
    }

    fn policy_ui(&mut self, ui: &mut egui::Ui) {
        let mut changed = false;
        let policy = &mut self.settings.policy;
        egui::Grid::new("policy").num_columns(2).show(ui, |ui| {
            ui.label("Threshold");
            changed |= ui
                .add(
                    egui::DragValue::new(&mut policy.threshold)
                        .range(-50.0..=150.0)
                        .speed(0.1)
                        .suffix(" °C"),
                )
                .changed();
            ui.end_row();
            ui.label("Hysteresis");
            changed |= ui
                .add(
                    egui::DragValue::new(&mut policy.hysteresis)
                        .range(0.0..=20.0)
                        .speed(0.05)
                        .suffix(" °C"),
                )
                .on_hover_text("An alert clears at threshold minus hysteresis or below.")
                .changed();
            ui.end_row();
            ui.label("Debounce");
            changed |= ui
                .add(
                    egui::DragValue::new(&mut policy.debounce)
                        .range(1..=100)
                        .suffix(" in a row"),
                )
                .on_hover_text("Readings above the threshold in a row before an alert is raised.")
                .changed();
            ui.end_row();
            ui.label("Reminder every");
            changed |= ui
                .add(
                    egui::DragValue::new(&mut policy.cooldown_seconds)
                        .range(0..=86_400)
                        .suffix(" s"),
                )
                .on_hover_text("0 sends no reminders.")
                .changed();
            ui.end_row();
            let label = ui.label("Mode");
            egui::ComboBox::from_id_salt("mode")
                .selected_text(policy.mode.as_str())
                .show_ui(ui, |ui| {
                    for mode in [AlertMode::OncePerExcursion, AlertMode::Every] {
                        changed |= ui
                            .selectable_value(&mut policy.mode, mode, mode.as_str())
                            .changed();
                    }
                })
                .response
                .labelled_by(label.id);
            ui.end_row();
        });
        if changed {
            let policy = self.settings.policy;
            if self.local_cloud_runs() {
                self.send(Command::SetPolicy(policy));
            }
            self.settings_changed();
        }
        if !self.local_cloud_runs() {
            ui.label(
                RichText::new(
                    "The local cloud is not running: the threshold only draws the chart line. In AWS, the Lambda function's environment sets the policy.",
                )
                .weak(),
            );
        }
    }

    /// Whether policy and rule changes have a local rules engine to go to.
    fn local_cloud_runs(&self) -> bool {
        self.pipeline.as_ref().is_some_and(Pipeline::is_local)
    }

    fn rule_ui(&mut self, ui: &mut egui::Ui) {
        ui.add(
            egui::TextEdit::multiline(&mut self.rule_text)
                .code_editor()
                .desired_rows(3)
                .desired_width(f32::INFINITY),
        )
        .accessible_name("Topic rule SQL");
        if !self.local_cloud_runs() {
            ui.label(
                RichText::new("The local cloud is not running; with AWS IoT Core the topic rule lives in AWS.")
                    .weak(),
            );
            return;
        }
        ui.horizontal(|ui| {
            if ui.button("Apply rule").clicked() {
                self.apply_rule();
            }
            if ui.button("Default").clicked() {
                crate::settings::DEFAULT_RULE_SQL.clone_into(&mut self.rule_text);
                self.apply_rule();
            }
        });
        if let Some(error) = &self.rule_error {
            ui.label(RichText::new(error).color(RAISED_COLOR));
        }
        if self.rule_text.trim() != self.settings.rule_sql.trim() {
            ui.label(
                RichText::new(format!("Running until applied: {}", self.settings.rule_sql))
                    .small()
                    .weak(),
            );
        }
        if !self.settings.rule_sql.contains("deviceId") && !self.settings.rule_sql.contains('*') {
            ui.label(
                RichText::new(
                    "This rule drops deviceId, so every reading counts as device \"unknown\".",
                )
                .weak(),
            );
        }
        if let Some(trace) = &self.last_trace {
            let text = match &trace.outcome {
                TraceOutcome::Decided {
                    decision,
                    temperature,
                    ..
                } => {
                    format!(
                        "Last message: matched, {temperature:.2} °C, {}",
                        decision.as_str()
                    )
                }
                other => format!("Last message: {}", other.reason().unwrap_or("no reason")),
            };
            ui.label(RichText::new(text).small());
        }
        if let Some(rejection) = &self.last_rejection {
            let device = rejection.device_id.as_deref().unwrap_or("a client");
            let seq = rejection
                .seq
                .map_or_else(String::new, |seq| format!(" #{seq}"));
            let reason = rejection.outcome.reason().unwrap_or("no reason");
            ui.label(
                RichText::new(format!("Last ignored message from {device}{seq}: {reason}"))
                    .small()
                    .color(THRESHOLD_COLOR),
            );
        }
    }

    pub(super) fn alerts_panel_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::right("alerts").resizable(true).default_size(330.0).show(ui, |ui| {
            ui.heading("Alerts");
            if self.alerts.is_empty() {
                ui.label(RichText::new("No alerts yet. Press Spike (S) to drive the temperature over the threshold.").weak());
                return;
            }
            egui::ScrollArea::vertical().show(ui, |ui| {
                egui::Grid::new("alert_list").num_columns(4).striped(true).show(ui, |ui| {
                    ui.strong("Time (UTC)");
                    ui.strong("Device");
                    ui.strong("Value");
                    ui.strong("Alert");
                    ui.end_row();
                    for alert in &self.alerts {
                        let time = alert.alerted_at.get(11..19).unwrap_or(&alert.alerted_at);
                        ui.label(time).on_hover_text(&alert.alerted_at);
                        ui.label(&alert.device_id);
                        ui.label(format!("{:.2} °C", alert.temperature));
                        let color = match alert.kind {
                            AlertKind::Cleared => CLEARED_COLOR,
                            _ => RAISED_COLOR,
                        };
                        ui.label(RichText::new(alert.kind.as_str()).color(color)).on_hover_text(notification_text(alert));
                        ui.end_row();
                    }
                });
            });
        });
    }

    pub(super) fn chart_panel_ui(&mut self, ui: &mut egui::Ui) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Temperature");
                ui.checkbox(&mut self.follow_live, "Follow live");
            });
            self.plot_ui(ui);
        });
    }

    fn plot_ui(&self, ui: &mut egui::Ui) {
        let threshold = self.settings.policy.threshold;
        let clear_level = self.settings.policy.clear_level();
        let latest = self.history.latest().map_or_else(
            || unix_seconds(time::OffsetDateTime::now_utc()),
            |sample| sample[0],
        );
        let (start, end) = (latest - LIVE_WINDOW_SECONDS, latest + 5.0);
        let width = ui.available_width().max(100.0) as usize;
        let mut plot = Plot::new("temperature")
            .legend(Legend::default().position(Corner::LeftTop))
            .include_y(threshold + 3.0)
            .include_y(clear_level - 3.0)
            .y_axis_label("°C")
            .x_axis_formatter(|mark, _range| clock_label(mark.value));
        if self.follow_live {
            plot = plot
                .default_x_bounds(start, end)
                .allow_drag(false)
                .allow_zoom(false)
                .allow_scroll(false);
        }
        let follow = self.follow_live;
        let (first, last) = if follow {
            (start, end)
        } else {
            let oldest = self.history.oldest().map_or(start, |sample| sample[0]);
            (oldest, latest)
        };
        let samples = self.history.decimated(first, last, width);
        // A pause or a lost connection leaves a gap in time; draw it as a gap, not a line.
        let interval = self.settings.sensor.interval_ms as f64 / 1000.0;
        let column = (last - first) / width as f64;
        let max_gap = (2.5 * interval).max(3.0 * column);
        let raised: Vec<[f64; 2]> = self.marker_points(|kind| kind != AlertKind::Cleared);
        let cleared: Vec<[f64; 2]> = self.marker_points(|kind| kind == AlertKind::Cleared);
        plot.show(ui, |plot_ui| {
            if follow {
                plot_ui.set_plot_bounds_x(start..=end);
            }
            for segment in split_at_gaps(&samples, max_gap) {
                plot_ui.line(
                    Line::new("Temperature", PlotPoints::from(segment.to_vec()))
                        .color(TEMPERATURE_COLOR)
                        .width(2.0),
                );
            }
            plot_ui.hline(
                HLine::new(format!("Threshold {threshold:.1} °C"), threshold)
                    .color(THRESHOLD_COLOR)
                    .width(2.0),
            );
            plot_ui.hline(
                HLine::new(format!("Clears at {clear_level:.1} °C"), clear_level)
                    .color(THRESHOLD_COLOR.gamma_multiply(0.6))
                    .style(LineStyle::dashed_loose()),
            );
            plot_ui.points(
                Points::new("Alert raised", raised)
                    .color(RAISED_COLOR)
                    .shape(MarkerShape::Diamond)
                    .radius(6.0),
            );
            plot_ui.points(
                Points::new("Alert cleared", cleared)
                    .color(CLEARED_COLOR)
                    .shape(MarkerShape::Circle)
                    .radius(5.0),
            );
        });
    }

    fn marker_points(&self, keep: impl Fn(AlertKind) -> bool) -> Vec<[f64; 2]> {
        self.markers
            .iter()
            .filter(|m| keep(m.kind))
            .map(|m| [m.time, m.temperature])
            .collect()
    }
}

/// Returns the `deviceId` that the selected remote profile puts into readings in place of
/// the sensor's own, if it does.
fn profile_device_id(settings: &crate::settings::Settings) -> Option<String> {
    let id = match settings.profile {
        crate::settings::Profile::Local => return None,
        crate::settings::Profile::Aws => settings.aws.effective_device_id(),
        crate::settings::Profile::Custom => settings.custom.device_id.trim(),
    };
    (!id.is_empty() && id != settings.sensor.device_id).then(|| id.to_owned())
}

/// Adds `widget` after a label that names it, for people and for screen readers.
fn labelled(ui: &mut egui::Ui, text: &str, widget: impl egui::Widget) -> egui::Response {
    let label = ui.label(text);
    ui.add(widget).labelled_by(label.id)
}

fn telemetry_label(state: TelemetryState) -> RichText {
    match state {
        TelemetryState::Active => RichText::new("Telemetry on"),
        TelemetryState::PausedByUser => {
            RichText::new("Paused (Space resumes)").color(THRESHOLD_COLOR)
        }
        TelemetryState::PausedByControl => {
            RichText::new("Paused by the control topic (Space resumes)").color(THRESHOLD_COLOR)
        }
    }
}

fn notification_text(alert: &temperature_alert::Alert) -> String {
    match &alert.notification {
        temperature_alert::Notification::Pending => "Email pending".to_owned(),
        temperature_alert::Notification::Sent { id } => format!("Email: {id}"),
        temperature_alert::Notification::Failed { error } => format!("Email failed: {error}"),
    }
}

/// `HH:MM:SS` in UTC for a time in seconds since the Unix epoch.
fn clock_label(seconds: f64) -> String {
    let total = seconds.rem_euclid(86_400.0) as u64;
    format!(
        "{:02}:{:02}:{:02}",
        total / 3600,
        total / 60 % 60,
        total % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_label_formats_utc_time() {
        assert_eq!(clock_label(1_796_378_405.25), "10:00:05");
        assert_eq!(clock_label(59.0), "00:00:59");
    }
}
