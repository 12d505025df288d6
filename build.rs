//! Embeds the application icon into the Windows executable. Other targets need nothing.

fn main() {
    println!("cargo:rerun-if-changed=assets/sensor-emulator.rc");
    println!("cargo:rerun-if-changed=assets/icon.ico");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows") {
        // On Linux this needs `aarch64-w64-mingw32-windres` on PATH (LLVM's llvm-windres
        // under that name), which scripts/build-windows-arm64 sets up; on Windows the SDK's
        // rc.exe is used.
        if let Err(error) =
            embed_resource::compile("assets/sensor-emulator.rc", embed_resource::NONE)
                .manifest_required()
        {
            panic!("cannot embed the application icon: {error}");
        }
    }
}
