// Gives the shared library a versioned soname on Linux, so C programs linked against it record
// `libsmolvlm.so.<major>` and a later incompatible release cannot be picked up silently.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsmolvlm.so.{major}");
    }
}
