//! `sensor-emulator doctor`: runs the connection doctor on a saved remote profile and
//! prints its report.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};

use crate::settings::{Profile, Settings};
use crate::tls::doctor::{self, DoctorOptions};
use crate::tls::remote::RemoteProfile;

/// Profiles the doctor can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorProfile {
    /// The AWS IoT Core profile.
    Aws,
    /// The custom MQTT broker profile.
    Custom,
}

/// Options of `sensor-emulator doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Profile to check; the selected profile when it is remote, else aws.
    #[arg(long, value_enum, value_name = "NAME")]
    pub profile: Option<DoctorProfile>,
    /// Longest wait of each network step, in seconds.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Which saved profile the arguments select.
#[must_use]
pub fn selected_profile(args: &DoctorArgs, settings: &Settings) -> Profile {
    match (args.profile, settings.profile) {
        (Some(DoctorProfile::Aws), _) | (None, Profile::Local | Profile::Aws) => Profile::Aws,
        (Some(DoctorProfile::Custom), _) | (None, Profile::Custom) => Profile::Custom,
    }
}

/// Runs the doctor and prints the report on standard output. Fails when a step failed.
///
/// The doctor connects with the profile's client id, so a window connected with the same
/// profile is disconnected by the broker while the doctor runs and reconnects after it.
pub async fn run(args: DoctorArgs, settings: &Settings) -> anyhow::Result<()> {
    if args.timeout == 0 {
        bail!("--timeout must be at least 1 second, e.g. --timeout 10");
    }
    let profile = selected_profile(&args, settings);
    let Some(remote) = RemoteProfile::from_settings(settings, profile) else {
        bail!(
            "the local profile needs no connection check; pass --profile aws or --profile custom"
        );
    };
    let options = DoctorOptions {
        timeout: Duration::from_secs(args.timeout),
        ..DoctorOptions::default()
    };
    let report = doctor::run(&remote, &options).await;
    println!("{report}");
    if let Some(failure) = report.first_failure() {
        bail!(
            "the connection check failed at \"{}\"",
            failure.step.title()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_defaults_to_the_selected_remote_one() {
        let mut settings = Settings::default();
        let args = DoctorArgs {
            profile: None,
            timeout: 10,
        };
        assert_eq!(selected_profile(&args, &settings), Profile::Aws);
        settings.profile = Profile::Custom;
        assert_eq!(selected_profile(&args, &settings), Profile::Custom);
        let aws = DoctorArgs {
            profile: Some(DoctorProfile::Aws),
            timeout: 10,
        };
        assert_eq!(selected_profile(&aws, &settings), Profile::Aws);
    }
}
