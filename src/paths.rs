//! Where settings, the outbox, logs and the instance lock live.
//!
//! By default these follow the operating system's conventions (through `directories`);
//! `--data-dir DIR` or `SENSOR_EMULATOR_DATA_DIR` puts all of them under one folder, so tests
//! and parallel runs never share state.

use std::fs::{self, File, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use directories::ProjectDirs;

/// Environment variable with the same meaning as `--data-dir`.
pub const DATA_DIR_ENV: &str = "SENSOR_EMULATOR_DATA_DIR";

/// Failures to find or prepare the app's folders.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot find a home folder for settings; pass --data-dir DIR or set {DATA_DIR_ENV}")]
    NoHome,
    #[error("cannot create {}: {source}; pass --data-dir DIR to use another folder", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Sensor Emulator is already running with the data folder {}; close it first, or start this one with --data-dir DIR", dir.display())]
    AlreadyRunning { dir: PathBuf },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The app's files and folders.
#[derive(Debug, Clone)]
pub struct AppPaths {
    pub settings_file: PathBuf,
    pub outbox_dir: PathBuf,
    pub log_dir: PathBuf,
    lock_file: PathBuf,
}

impl AppPaths {
    /// Everything under `data_dir` when given, else the operating system's folders.
    pub fn resolve(data_dir: Option<&Path>) -> Result<Self, PathsError> {
        if let Some(dir) = data_dir {
            return Ok(Self {
                settings_file: dir.join("settings.json"),
                outbox_dir: dir.join("outbox"),
                log_dir: dir.join("logs"),
                lock_file: dir.join("instance.lock"),
            });
        }
        let dirs = ProjectDirs::from("", "", "Sensor Emulator").ok_or(PathsError::NoHome)?;
        Ok(Self {
            settings_file: dirs.config_dir().join("settings.json"),
            outbox_dir: dirs.data_dir().join("outbox"),
            log_dir: dirs.data_local_dir().join("logs"),
            lock_file: dirs.data_local_dir().join("instance.lock"),
        })
    }

    /// Takes the lock that lets one instance at a time use these folders. The lock is
    /// held until the returned value is dropped, and the operating system releases it if
    /// the process dies.
    pub fn lock_instance(&self) -> Result<InstanceLock, PathsError> {
        let path = &self.lock_file;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| PathsError::Create {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| PathsError::Lock {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let dir = path
                    .parent()
                    .map_or_else(|| path.clone(), Path::to_path_buf);
                return Err(PathsError::AlreadyRunning { dir });
            }
            Err(TryLockError::Error(source)) => {
                return Err(PathsError::Lock {
                    path: path.clone(),
                    source,
                });
            }
        }
        // The process id is only for people looking at the file.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(InstanceLock { _file: file })
    }
}

/// Proof that this process owns its data folder.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_holds_everything() {
        let paths = AppPaths::resolve(Some(Path::new("/tmp/x"))).unwrap();
        assert_eq!(paths.settings_file, Path::new("/tmp/x/settings.json"));
        assert_eq!(paths.outbox_dir, Path::new("/tmp/x/outbox"));
        assert_eq!(paths.log_dir, Path::new("/tmp/x/logs"));
    }

    #[test]
    fn second_lock_reports_running_instance() {
        let dir = tempfile::tempdir().unwrap();
        let paths = AppPaths::resolve(Some(dir.path())).unwrap();
        let first = paths.lock_instance().unwrap();
        let error = paths.lock_instance().unwrap_err();
        assert!(matches!(&error, PathsError::AlreadyRunning { dir: d } if d == dir.path()));
        assert!(
            error
                .to_string()
                .starts_with("Sensor Emulator is already running")
        );
        drop(first);
        assert!(paths.lock_instance().is_ok());
    }
}
