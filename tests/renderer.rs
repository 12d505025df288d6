//! Starts the real window binary to check the renderer fallback: when the first renderer
//! cannot start the other one is tried, and when none can, the user gets a message, not a
//! panic. Linux only: the tests control the X display through environment variables.

#![cfg(target_os = "linux")]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(45);

fn window_command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sensor-emulator"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--broker-port", "0"])
        .env("RUST_LOG", "info,rumqttd=off")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null());
    command
}

/// Kills the child process when dropped, so a failed test leaves no window running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An X server of its own on a display number that no other server uses.
fn start_xvfb() -> (KillOnDrop, String) {
    let number = (150..250)
        .find(|n| !Path::new(&format!("/tmp/.X{n}-lock")).exists())
        .expect("a free X display number");
    let display = format!(":{number}");
    let server = Command::new("Xvfb")
        .args([
            display.as_str(),
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb is installed (Debian package xvfb)");
    let socket = format!("/tmp/.X11-unix/X{number}");
    let started = std::time::Instant::now();
    while !Path::new(&socket).exists() {
        assert!(started.elapsed() < TIMEOUT, "Xvfb did not create {socket}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (KillOnDrop(server), display)
}

#[test]
#[ignore = "needs Xvfb and Mesa; run by .ci/run"]
fn failing_wgpu_falls_back_to_glow() {
    let (_xvfb, display) = start_xvfb();
    let dir = tempfile::tempdir().unwrap();
    // No Direct3D 12 exists on Linux, so wgpu restricted to it cannot create a surface.
    let mut app = window_command(dir.path())
        .args(["--renderer", "wgpu"])
        .env("DISPLAY", &display)
        .env("WGPU_BACKEND", "dx12")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(app.stderr.take().unwrap());
    let mut app = KillOnDrop(app);
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut log = Vec::new();
    let mut wgpu_failed = false;
    loop {
        let line = lines
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("the window did not start; log:\n{}", log.join("\n")));
        wgpu_failed |= line.contains("renderer failed to start; trying the next one renderer=wgpu");
        let running = line.contains("pipeline started");
        log.push(line);
        if running {
            break;
        }
    }
    assert!(
        wgpu_failed,
        "wgpu was not reported as failed:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter()
            .any(|line| line.contains("opening the window renderer=glow")),
        "glow was not tried:\n{}",
        log.join("\n")
    );
    assert!(
        app.0.try_wait().unwrap().is_none(),
        "the app exited instead of running"
    );
}

#[test]
fn no_display_ends_in_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = window_command(dir.path())
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the window could not open: "),
        "{stderr}"
    );
    assert!(stderr.contains("glow failed"), "{stderr}");
    assert!(stderr.contains("wgpu failed"), "{stderr}");
    assert!(
        stderr
            .contains("use the emulator without a window: sensor-emulator headless --duration 60s"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
