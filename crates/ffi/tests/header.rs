//! The committed `include/libchat.h` is exactly what cbindgen generates from the sources (the
//! CI drift check). `LIBCHAT_UPDATE_HEADER=1 cargo test -p libchat-ffi --test header` rewrites
//! it.

use std::path::Path;

#[test]
fn committed_header_matches_a_fresh_generation() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");

    let path = crate_dir.join("include/libchat.h");
    if std::env::var_os("LIBCHAT_UPDATE_HEADER").is_some() {
        std::fs::create_dir_all(crate_dir.join("include")).expect("include/ can be created");
        std::fs::write(&path, &fresh).expect("the header can be written");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let first_difference = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()));
        panic!(
            "{} differs from the header generated from the sources (first difference at line {}); \
             regenerate it with LIBCHAT_UPDATE_HEADER=1 cargo test -p libchat-ffi --test header",
            path.display(),
            first_difference + 1
        );
    }
}
