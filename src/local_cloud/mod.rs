//! The embedded local cloud that stands in for AWS: an MQTT broker, a rules engine for a
//! subset of AWS IoT SQL, and an outbox where alert emails are written as files.

pub mod broker;
pub mod engine;
pub mod outbox;
pub mod rules;
