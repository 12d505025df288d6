//! Sensor Emulator: a desktop temperature-sensor emulator and alert monitor for AWS IoT
//! Core, with an embedded local cloud (MQTT broker, rules engine, alert policy and email
//! outbox) so that it works on first launch without an AWS account.
//!
//! The binary's window ([`app`]) and headless mode ([`headless`]) drive the same
//! [`pipeline`].

// Tests compare values that were assigned or rounded, so exact float equality is intended.
#![cfg_attr(test, allow(clippy::float_cmp))]

pub mod app;
pub mod doctor;
pub mod headless;
pub mod history;
pub mod local_cloud;
pub mod mqtt;
pub mod paths;
pub mod pipeline;
pub mod sensor;
pub mod settings;
pub mod tls;
