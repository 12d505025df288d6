//! Headless mode: the window's pipeline without a window, printing readings and alerts as
//! JSON lines on standard output.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use tokio::sync::mpsc;

use crate::local_cloud::engine::TraceOutcome;
use crate::paths::AppPaths;
use crate::pipeline::{Command, EventSink, Pipeline, PipelineConfig, PipelineEvent};
use crate::sensor::{Clock, NumberFormat, SETPOINT_RANGE, SensorSettings};
use crate::settings::Settings;

/// Longest run accepted, so that the end time stays far inside the calendar's range.
const MAX_DURATION: Duration = Duration::from_hours(366 * 24);

/// Thresholds accepted, °C; the window's threshold field has the same range.
const THRESHOLD_RANGE: std::ops::RangeInclusive<f64> = -50.0..=150.0;

/// How long to wait, in real time, for the last readings and alerts after telemetry stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Options of `sensor-emulator headless`.
#[derive(Debug, Clone, Args)]
pub struct HeadlessArgs {
    /// Length of the run in emulated time, e.g. 30s, 2m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Start a spike this long after the start, e.g. 5s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub spike_at: Option<Duration>,
    /// Seed of the sensor noise, for repeatable runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Setpoint in °C (-20 to 80); the saved setting when omitted.
    #[arg(long, allow_negative_numbers = true)]
    pub setpoint: Option<f64>,
    /// Alert threshold in °C; the saved setting when omitted.
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f64>,
    /// How many times faster than real time to run (0.1 to 1000).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub speed: f64,
    /// Also print the rules engine's trace of every message.
    #[arg(long)]
    pub trace: bool,
}

impl HeadlessArgs {
    fn apply_to(&self, settings: &mut Settings) -> anyhow::Result<()> {
        if self.duration.is_zero() {
            bail!("--duration must be longer than 0 s, e.g. --duration 30s");
        }
        if self.duration > MAX_DURATION {
            bail!(
                "--duration {} is too long; use at most 366 days",
                humantime::format_duration(self.duration)
            );
        }
        if let Some(spike_at) = self.spike_at
            && spike_at >= self.duration
        {
            bail!(
                "--spike-at {} is not before the end of the run (--duration {}); use an earlier time",
                humantime::format_duration(spike_at),
                humantime::format_duration(self.duration)
            );
        }
        if !(0.1..=1000.0).contains(&self.speed) {
            bail!(
                "--speed {} is out of range; use a factor from 0.1 to 1000, e.g. --speed 10",
                self.speed
            );
        }
        if let Some(setpoint) = self.setpoint {
            if !SETPOINT_RANGE.contains(&setpoint) {
                bail!("--setpoint {setpoint} is out of range; use -20 to 80 °C");
            }
            settings.sensor.setpoint = setpoint;
        }
        if let Some(threshold) = self.threshold {
            if !THRESHOLD_RANGE.contains(&threshold) {
                bail!("--threshold {threshold} is out of range; use -50 to 150 °C");
            }
            settings.policy.threshold = threshold;
        }
        Ok(())
    }
}

/// Runs the pipeline for the requested time and prints what happens.
pub async fn run(
    args: HeadlessArgs,
    mut settings: Settings,
    paths: &AppPaths,
    broker_port: Option<u16>,
) -> anyhow::Result<()> {
    args.apply_to(&mut settings)?;
    if let Some(port) = broker_port {
        settings.broker.port = port;
    }
    let clock = Clock::scaled(args.speed);
    let duration = time::Duration::try_from(args.duration).context("--duration is too long")?;
    let config = PipelineConfig {
        sensor: settings.sensor.clone(),
        policy: settings.policy,
        rule_sql: settings.rule_sql.clone(),
        broker: settings.broker,
        outbox_dir: paths.outbox_dir.clone(),
        email_to: settings.email_to.clone(),
        seed: args.seed,
        run_for: Some(duration),
    };
    let (sink, events) = EventSink::new(|| {});
    let pipeline = Pipeline::start(config, clock, sink.clone())?;
    if let Some(addr) = pipeline.broker_addr() {
        eprintln!(
            "broker listening on {addr}; outbox {}",
            pipeline.outbox_dir.display()
        );
    }
    if let Some(offset) = args.spike_at {
        let offset = time::Duration::try_from(offset).context("--spike-at is too long")?;
        pipeline.send(Command::Spike {
            start: Some(pipeline.started_at + offset),
        });
    }
    let summary = print_events(events, &settings.sensor, args.trace).await?;
    if sink.dropped() > 0 {
        bail!(
            "{} events were dropped because output could not keep up",
            sink.dropped()
        );
    }
    eprintln!(
        "readings sent: {}, alerts received: {}; outbox {}",
        summary.readings,
        summary.alerts,
        pipeline.outbox_dir.display()
    );
    Ok(())
}

#[derive(Debug, Default)]
struct Summary {
    readings: u64,
    alerts: u64,
}

#[derive(Debug, Default)]
struct Progress {
    /// The emulated device, whose last reading must be judged before the run ends.
    device_id: String,
    format: NumberFormat,
    summary: Summary,
    /// Alerts the rules engine sent; the run ends after all of them came back.
    alerts_sent: u64,
    last_seq_judged: Option<u64>,
    last_seq_sent: Option<u64>,
}

impl Progress {
    fn drained(&self) -> bool {
        let Some(last_seq) = self.last_seq_sent else {
            return false;
        };
        let judged = last_seq == 0 || self.last_seq_judged.is_some_and(|seq| seq >= last_seq);
        judged && self.summary.alerts >= self.alerts_sent
    }
}

async fn print_events(
    mut events: mpsc::Receiver<PipelineEvent>,
    sensor: &SensorSettings,
    trace: bool,
) -> anyhow::Result<Summary> {
    let mut progress = Progress {
        device_id: sensor.device_id.clone(),
        format: sensor.number_format(),
        ..Progress::default()
    };
    let mut out = std::io::stdout().lock();
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        let event = match drain_deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(event) => event,
                Err(_) => bail!(
                    "timed out after {} s waiting for the rules engine: {} of {} alerts came back",
                    DRAIN_TIMEOUT.as_secs(),
                    progress.summary.alerts,
                    progress.alerts_sent
                ),
            },
            None => events.recv().await,
        };
        let Some(event) = event else {
            bail!("the pipeline stopped unexpectedly")
        };
        print_event(&mut out, &event, trace, &mut progress)?;
        if matches!(event, PipelineEvent::Finished { .. }) {
            drain_deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
        }
        if progress.drained() {
            out.flush()?;
            return Ok(progress.summary);
        }
    }
}

fn print_event(
    out: &mut impl std::io::Write,
    event: &PipelineEvent,
    trace: bool,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    match event {
        PipelineEvent::ReadingSent(reading) => {
            progress.summary.readings += 1;
            let payload = reading.to_payload(progress.format);
            out.write_all(b"{\"reading\":")?;
            out.write_all(&payload)?;
            out.write_all(b"}\n")?;
        }
        PipelineEvent::Alert(alert) => {
            progress.summary.alerts += 1;
            writeln!(out, "{}", serde_json::json!({ "alert": alert }))?;
        }
        PipelineEvent::Trace(rule_trace) => {
            if rule_trace.device_id.as_deref() == Some(progress.device_id.as_str()) {
                progress.last_seq_judged = progress.last_seq_judged.max(rule_trace.seq);
            }
            if let TraceOutcome::Decided { alert: Some(_), .. } = rule_trace.outcome {
                progress.alerts_sent += 1;
            }
            if trace {
                writeln!(out, "{}", serde_json::json!({ "trace": rule_trace }))?;
            }
        }
        PipelineEvent::Finished { last_seq } => {
            progress.last_seq_sent = Some(*last_seq);
        }
        PipelineEvent::UnexpectedControl { payload } => {
            eprintln!("unexpected control message ignored: {payload}");
        }
        PipelineEvent::Error(message) => eprintln!("error: {message}"),
        PipelineEvent::Link(_)
        | PipelineEvent::ReadingSkipped { .. }
        | PipelineEvent::Telemetry(_)
        | PipelineEvent::Spike { .. } => {}
    }
    Ok(())
}
