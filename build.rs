// Records the target triple and profile for `smolvlm_system_info()`, so a bug report says what
// was built.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=SMOLVLM_BUILD={target} ({profile})");
}
