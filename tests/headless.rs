//! Runs the real `sensor-emulator headless` binary and checks what it prints and writes.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn headless(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sensor-emulator"));
    command
        .args(["--data-dir"])
        .arg(data_dir)
        .args(["--broker-port", "0", "headless"])
        .args(args)
        .env("RUST_LOG", "warn,rumqttd=off")
        .stdin(Stdio::null());
    command
}

#[test]
fn default_spike_raises_and_clears_once() {
    let dir = tempfile::tempdir().unwrap();
    let output = headless(
        dir.path(),
        &[
            "--duration",
            "25s",
            "--spike-at",
            "3s",
            "--seed",
            "7",
            "--speed",
            "20",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );

    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let readings: HashMap<u64, &Value> = lines
        .iter()
        .filter_map(|line| line.get("reading"))
        .map(|reading| (reading["seq"].as_u64().unwrap(), reading))
        .collect();
    let alerts: Vec<&Value> = lines.iter().filter_map(|line| line.get("alert")).collect();
    assert_eq!(readings.len(), 25, "one reading per second for 25 s");
    assert_eq!(lines.len(), 27, "25 readings and 2 alerts");
    let kinds: Vec<&str> = alerts.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["raised", "cleared"]);

    // The spike starts 3 s in, so the 4th reading raises; it lasts 10 s, so the 14th clears.
    let seqs: Vec<u64> = alerts
        .iter()
        .map(|a| a["readingSeq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [4, 14]);
    for alert in &alerts {
        let reading = readings[&alert["readingSeq"].as_u64().unwrap()];
        assert_eq!(
            alert["temperature"], reading["temperature"],
            "alert value is the reading's"
        );
        assert_eq!(alert["readingTimestamp"], reading["timestamp"]);
        assert_eq!(alert["deviceId"], "WeatherStationEmulator");
        assert_eq!(alert["source"], "local");
    }
    assert!(alerts[0]["temperature"].as_f64().unwrap() > 35.0);
    assert!(alerts[1]["temperature"].as_f64().unwrap() <= 34.0);

    // Both emails are in the outbox, and the journal contains the same alerts.
    let outbox = dir.path().join("outbox");
    let subjects = [
        "Subject: Temperature Alert\r\n",
        "Subject: Temperature back to normal\r\n",
    ];
    for (alert, subject) in alerts.iter().zip(subjects) {
        assert_eq!(alert["notification"]["status"], "sent");
        let file = outbox.join(alert["notification"]["id"].as_str().unwrap());
        let email = fs::read_to_string(&file).unwrap();
        assert!(email.contains(subject), "{}: {email}", file.display());
    }
    let journal: Vec<Value> = fs::read_to_string(outbox.join("alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(journal.iter().collect::<Vec<_>>(), alerts);
}

#[test]
fn same_seed_same_readings() {
    let temperatures = |dir: &Path| -> Vec<f64> {
        let output = headless(dir, &["--duration", "5s", "--seed", "42", "--speed", "50"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| {
                serde_json::from_str::<Value>(line).ok()?.get("reading")?["temperature"].as_f64()
            })
            .collect()
    };
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let a = temperatures(first.path());
    assert_eq!(a.len(), 5);
    assert_eq!(a, temperatures(second.path()));
}

#[test]
fn invalid_options_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &["--duration", "5s", "--speed", "-1"],
            "--speed -1 is out of range",
        ),
        (
            &["--duration", "5s", "--threshold", "1e999"],
            "--threshold inf is out of range; use -50 to 150 °C",
        ),
        (
            &["--duration", "5s", "--spike-at", "10s"],
            "--spike-at 10s is not before the end of the run (--duration 5s)",
        ),
        (
            &["--duration", "100000000h"],
            "is too long; use at most 366 days",
        ),
        (
            &["--duration", "5s", "--setpoint", "120"],
            "--setpoint 120 is out of range",
        ),
        (
            &["--duration", "5s", "--speed", "0"],
            "--speed 0 is out of range",
        ),
        (
            &["--duration", "soon"],
            "invalid value 'soon' for '--duration <DURATION>'",
        ),
    ];
    for (args, expected) in cases {
        let output = headless(dir.path(), args).output().unwrap();
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn second_instance_on_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = headless(dir.path(), &["--duration", "60s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The first reading on stdout shows that the first instance holds the lock.
    let mut stdout = std::io::BufReader::new(first.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.starts_with("{\"reading\":"), "{line}");

    let second = headless(dir.path(), &["--duration", "1s"])
        .output()
        .unwrap();
    first.kill().unwrap();
    let _ = first.wait();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("Sensor Emulator is already running with the data folder"),
        "{stderr}"
    );
}

#[test]
fn data_dir_with_spaces_and_accents() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("Données de démo ✓");
    let output = headless(
        &dir,
        &[
            "--duration",
            "4s",
            "--spike-at",
            "1s",
            "--seed",
            "3",
            "--speed",
            "20",
        ],
    )
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let emails: Vec<_> = fs::read_dir(dir.join("outbox"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| Path::new(name).extension().is_some_and(|ext| ext == "eml"))
        .collect();
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert!(emails[0].contains("-raised-"), "{emails:?}");
    assert!(
        dir.join("logs").is_dir(),
        "logs are written under the data folder"
    );
}
