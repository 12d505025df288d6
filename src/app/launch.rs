//! Opening the window: which renderer to use, and falling back to the other one when the
//! first cannot start.
//!
//! On Windows the default is wgpu restricted to Direct3D 12. Left alone, wgpu prefers
//! Vulkan, which has crashed on Snapdragon (Adreno X1) laptops, while Direct3D 12 also
//! works in virtual machines without a GPU through Microsoft's software renderer. Qualcomm
//! ships no desktop OpenGL driver, so glow gets only OpenGL 1.1 there and is the fallback.
//! Elsewhere glow is the default: under Xvfb it costs about a fifth of wgpu's CPU per frame.

use std::fmt;

use eframe::egui_wgpu::{WgpuSetup, WgpuSetupCreateNew};
use eframe::wgpu;

/// The two renderers compiled into the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RendererChoice {
    /// Direct3D 12 on Windows, Vulkan or OpenGL elsewhere.
    Wgpu,
    /// OpenGL 2 or newer.
    Glow,
}

impl RendererChoice {
    fn other(self) -> Self {
        match self {
            Self::Wgpu => Self::Glow,
            Self::Glow => Self::Wgpu,
        }
    }

    /// Returns the order to try: the requested renderer first, else this platform's default.
    #[must_use]
    pub fn order(requested: Option<Self>) -> [Self; 2] {
        let first = requested.unwrap_or(if cfg!(windows) {
            Self::Wgpu
        } else {
            Self::Glow
        });
        [first, first.other()]
    }

    /// Sets `options` up for this renderer.
    pub fn configure(self, options: &mut eframe::NativeOptions) {
        match self {
            Self::Glow => options.renderer = eframe::Renderer::Glow,
            Self::Wgpu => {
                options.renderer = eframe::Renderer::Wgpu;
                let mut setup = WgpuSetupCreateNew::without_display_handle();
                // `WGPU_BACKEND` still wins when set.
                if cfg!(windows) && wgpu::Backends::from_env().is_none() {
                    setup.instance_descriptor.backends = wgpu::Backends::DX12;
                }
                options.wgpu_options.wgpu_setup = WgpuSetup::CreateNew(setup);
            }
        }
    }
}

impl fmt::Display for RendererChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Wgpu => "wgpu",
            Self::Glow => "glow",
        })
    }
}

/// Error: no renderer could open the window.
#[derive(Debug, thiserror::Error)]
#[error(
    "the window could not open: {}. Update the graphics driver, or use the emulator without \
     a window: sensor-emulator headless --duration 60s",
    describe(.attempts)
)]
pub struct LaunchError {
    /// Each renderer tried, with its error.
    pub attempts: Vec<(RendererChoice, String)>,
}

fn describe(attempts: &[(RendererChoice, String)]) -> String {
    let parts: Vec<String> = attempts
        .iter()
        .map(|(renderer, error)| format!("{renderer} failed ({error})"))
        .collect();
    parts.join("; ")
}

/// Outcome of one start attempt.
#[derive(Debug)]
pub enum Attempt {
    /// The window opened, ran and was closed.
    Ran,
    /// The renderer could not start, before the app was created; another one may work.
    RendererFailed(String),
    /// The app was created and then failed; another renderer would start it twice.
    AppFailed(String),
}

/// Runs `start` with each renderer of `order` until one opens the window.
pub fn launch_with_fallback(
    order: [RendererChoice; 2],
    mut start: impl FnMut(RendererChoice) -> Attempt,
) -> Result<(), LaunchError> {
    let mut attempts = Vec::new();
    for renderer in order {
        match start(renderer) {
            Attempt::Ran => return Ok(()),
            Attempt::RendererFailed(error) => {
                tracing::warn!(%renderer, %error, "renderer failed to start; trying the next one");
                attempts.push((renderer, error));
            }
            Attempt::AppFailed(error) => {
                attempts.push((renderer, error));
                break;
            }
        }
    }
    Err(LaunchError { attempts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_default_order() {
        let expected = if cfg!(windows) {
            [RendererChoice::Wgpu, RendererChoice::Glow]
        } else {
            [RendererChoice::Glow, RendererChoice::Wgpu]
        };
        assert_eq!(RendererChoice::order(None), expected);
        assert_eq!(
            RendererChoice::order(Some(RendererChoice::Wgpu)),
            [RendererChoice::Wgpu, RendererChoice::Glow]
        );
    }

    #[test]
    fn second_renderer_tried_after_first_fails() {
        let mut tried = Vec::new();
        let result =
            launch_with_fallback([RendererChoice::Wgpu, RendererChoice::Glow], |renderer| {
                tried.push(renderer);
                match renderer {
                    RendererChoice::Wgpu => Attempt::RendererFailed("no suitable adapter".into()),
                    RendererChoice::Glow => Attempt::Ran,
                }
            });
        assert!(result.is_ok());
        assert_eq!(tried, [RendererChoice::Wgpu, RendererChoice::Glow]);
    }

    #[test]
    fn both_failing_ends_in_message() {
        let error =
            launch_with_fallback([RendererChoice::Glow, RendererChoice::Wgpu], |renderer| {
                Attempt::RendererFailed(match renderer {
                    RendererChoice::Glow => "NoAvailablePixelFormat".into(),
                    RendererChoice::Wgpu => "no suitable adapter".into(),
                })
            })
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the window could not open: glow failed (NoAvailablePixelFormat); wgpu failed (no \
             suitable adapter). Update the graphics driver, or use the emulator without a \
             window: sensor-emulator headless --duration 60s"
        );
    }

    #[test]
    fn app_failure_is_not_retried() {
        let mut tried = 0;
        let error = launch_with_fallback(RendererChoice::order(None), |_| {
            tried += 1;
            Attempt::AppFailed("the event loop stopped".into())
        })
        .unwrap_err();
        assert_eq!(tried, 1);
        assert_eq!(error.attempts.len(), 1);
    }
}
