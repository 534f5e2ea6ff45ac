//! Compiles the XDP steering program (`bpf/xdptcp.bpf.c`) with clang and generates its libbpf-rs skeleton into
//! `$OUT_DIR/xdptcp.skel.rs`, which `src/xdp/loader.rs` includes.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/xdptcp.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("xdptcp.skel.rs");
    // The uapi headers (<linux/bpf.h>) pull in <asm/types.h>, which Debian keeps under the multiarch directory; a
    // `-target bpf` compile does not search it by default. `-idirafter` keeps it behind libbpf's own headers.
    let multiarch = format!("/usr/include/{}-linux-gnu", env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default());
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(["-Wall", "-Werror", "-idirafter", multiarch.as_str()])
        .build_and_generate(&out)
        .unwrap_or_else(|e| panic!("building {SRC}: {e:#}"));
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=build.rs");
}
