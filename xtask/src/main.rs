//! `cargo xtask` — the project's task runner. It makes the README's two commands work on a fresh machine that has
//! only a Rust toolchain, a C compiler and Python 3.
//!
//! The one system dependency is libopus (through `audiopus_sys`), which is found or built as follows, first match
//! wins, and nothing needs root:
//!
//! 1. `LIBOPUS_LIB_DIR` / `OPUS_LIB_DIR` set by the user: used as is.
//! 2. A system libopus that `pkg-config` finds (e.g. Debian's `libopus-dev`): linked directly (~3 s).
//! 3. A `cmake` on `PATH`: `audiopus_sys` builds its bundled libopus with it (~25–50 s, once).
//! 4. Otherwise CMake 3.x is installed from PyPI with `python3 -m pip install --target target/tools/cmake "cmake<4"`
//!    (about 30 MB, inside the build directory, once), put first on `PATH`, and step 3 applies.
//!
//! `CMAKE_POLICY_VERSION_MINIMUM=3.5` is always set (also in `.cargo/config.toml`) because the bundled libopus's
//! CMakeLists predates CMake 3.5, which CMake 4 refuses without it.
//!
//! `demo` and `quality` also install the `pesq` and `numpy` packages from PyPI into `target/tools/pesq` (no root,
//! once) for their PESQ-WB scores, and use Debian's `espeak-ng` for speech when it is installed.
//!
//! `fuzz` runs the cargo-fuzz targets under libFuzzer with the nightly toolchain already installed (never a
//! downloaded one), after installing cargo-fuzz from crates.io into `target/tools`; see [`fuzz`].
//!
//! Commands: `demo`, `test`, `ci`, `quality`, `fuzz`, `env` (print the `export` lines for a shell:
//! `eval "$(cargo xtask env)"`).

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

mod fuzz;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
    let result = match cmd {
        "demo" => provision(&root, true).and_then(|envs| demo(&root, &envs, rest)),
        "test" => provision(&root, true).and_then(|envs| test(&root, &envs, rest)),
        "ci" => provision(&root, true).and_then(|envs| ci(&root, &envs)),
        "quality" => provision(&root, true).and_then(|envs| quality(&root, &envs, rest)),
        // Provisions (CMake for libopus) only once it knows a nightly toolchain is there.
        "fuzz" => fuzz::run(&root, rest),
        "env" => provision(&root, false).map(|envs| print_env(&envs)),
        _ => {
            eprintln!("usage: cargo xtask <demo|test|ci|quality|fuzz|env> [args]");
            eprintln!("  demo  provision libopus, then run the end-to-end demo (release build)");
            eprintln!("  test  provision libopus, then run the whole test suite");
            eprintln!(
                "  ci    everything .ci/run checks: fmt, clippy, docs, tests, benches, fuzz targets built and run"
            );
            eprintln!("  quality  provision PESQ (PyPI, into target/tools/pesq), then run the listening harness");
            eprintln!(
                "  fuzz  [--seconds N] [--runs N] [--target NAME]... run the fuzz targets with libFuzzer (nightly; \
                 installs cargo-fuzz into target/tools)"
            );
            eprintln!("  env   provision, then print `export` lines for your shell: eval \"$(cargo xtask env)\"");
            return if cmd == "help" || cmd == "--help" { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Envs = Vec<(String, OsString)>;

fn say(loud: bool, msg: &str) {
    if loud {
        eprintln!("xtask: {msg}");
    }
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Finds or installs what the libopus build needs; returns the environment to run cargo with.
fn provision(root: &Path, loud: bool) -> Result<Envs, String> {
    let mut envs: Envs = vec![("CMAKE_POLICY_VERSION_MINIMUM".into(), "3.5".into())];
    if env::var_os("LIBOPUS_LIB_DIR").is_some() || env::var_os("OPUS_LIB_DIR").is_some() {
        say(loud, "libopus: using LIBOPUS_LIB_DIR/OPUS_LIB_DIR from the environment");
        return Ok(envs);
    }
    if succeeds(Command::new("pkg-config").args(["--exists", "opus"])) {
        say(loud, "libopus: system library found by pkg-config; linking it");
        return Ok(envs);
    }
    if succeeds(Command::new("cmake").arg("--version")) {
        say(loud, "libopus: no system library; building the bundled one with the cmake on PATH (once)");
        return Ok(envs);
    }
    let tools = root.join("target/tools/cmake");
    let bin = match find_cmake_bin(&tools) {
        Some(bin) => bin,
        None => {
            say(
                loud,
                "libopus: no system library and no cmake; installing CMake 3.x from PyPI into target/tools/cmake",
            );
            say(
                loud,
                "         (python3 -m pip install --target target/tools/cmake \"cmake<4\"; no root needed, done once)",
            );
            let python = if succeeds(Command::new("python3").arg("--version")) { "python3" } else { "python" };
            let status = Command::new(python)
                .env("PIP_ROOT_USER_ACTION", "ignore")
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-script-location"])
                .arg("--target")
                .arg(&tools)
                .arg("cmake>=3.20,<4")
                .status()
                .map_err(|e| format!("could not run {python} -m pip: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "installing cmake from PyPI failed ({status}). Install one of: cmake, or libopus-dev + pkg-config, \
                     or set LIBOPUS_LIB_DIR to a directory holding libopus; then run the command again."
                ));
            }
            find_cmake_bin(&tools).ok_or("pip installed cmake but its binary was not found under target/tools/cmake")?
        }
    };
    say(loud, &format!("libopus: building the bundled one with {} (once)", bin.join("cmake").display()));
    let path = env::var_os("PATH").unwrap_or_default();
    let joined = env::join_paths(std::iter::once(bin).chain(env::split_paths(&path)))
        .map_err(|e| format!("cannot extend PATH: {e}"))?;
    envs.push(("PATH".into(), joined));
    Ok(envs)
}

/// The directory holding the `cmake` binary of the PyPI wheel (`cmake/data/bin/cmake`), if installed.
fn find_cmake_bin(tools: &Path) -> Option<PathBuf> {
    let bin = tools.join("cmake/data/bin");
    let ok = bin.join("cmake").is_file() && succeeds(Command::new(bin.join("cmake")).arg("--version"));
    ok.then_some(bin)
}

fn print_env(envs: &Envs) {
    for (k, v) in envs {
        let v = v.to_string_lossy().replace('\'', r"'\''");
        println!("export {k}='{v}'");
    }
}

fn cargo(root: &Path, envs: &Envs, args: &[&str], extra: &[String]) -> Result<(), String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "xtask: cargo {}",
        args.iter().map(|s| s.to_string()).chain(extra.iter().cloned()).collect::<Vec<_>>().join(" ")
    );
    let status = Command::new(cargo)
        .args(args)
        .args(extra)
        .current_dir(root)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn demo(root: &Path, envs: &Envs, extra: &[String]) -> Result<(), String> {
    // The demo scores what was heard with PESQ-WB when the scorer can be installed; without it, it says so.
    let mut envs = envs.clone();
    match pesq_tools(root) {
        Ok(tools) => envs.push(("VOICE_PESQ_PATH".into(), tools.into_os_string())),
        Err(e) => eprintln!("xtask: the demo runs without its PESQ-WB score: {e}"),
    }
    let envs = &envs;
    let mut args = vec!["run", "--release", "--quiet", "-p", "voice-examples", "--bin", "demo"];
    if !extra.is_empty() {
        args.push("--");
    }
    cargo(root, envs, &args, extra)
}

/// Installs the PESQ scorer (`pesq` and `numpy` from PyPI) into `target/tools/pesq` unless python3 can already
/// import them from there; returns that directory.
fn pesq_tools(root: &Path) -> Result<PathBuf, String> {
    let tools = root.join("target/tools/pesq");
    let python = if succeeds(Command::new("python3").arg("--version")) { "python3" } else { "python" };
    let importable = || succeeds(Command::new(python).env("PYTHONPATH", &tools).args(["-c", "import pesq, numpy"]));
    if !importable() {
        eprintln!("xtask: installing the PESQ scorer from PyPI into target/tools/pesq (pesq, numpy; once)");
        let status = Command::new(python)
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-script-location"])
            .arg("--target")
            .arg(&tools)
            .args(["pesq", "numpy"])
            .status()
            .map_err(|e| format!("could not run {python} -m pip: {e}"))?;
        if !status.success() || !importable() {
            return Err(format!("installing `pesq` and `numpy` from PyPI failed ({status}); it needs a C compiler"));
        }
    }
    Ok(tools)
}

/// The listening harness (`voice-quality`): PESQ-WB of speech through the stack against offline libopus.
fn quality(root: &Path, envs: &Envs, extra: &[String]) -> Result<(), String> {
    let tools = pesq_tools(root)?;
    if !succeeds(Command::new("espeak-ng").arg("--version")) {
        eprintln!(
            "xtask: espeak-ng is not installed: the harness uses generated speech (Debian: apt-get install espeak-ng)"
        );
    }
    let mut envs = envs.clone();
    envs.push(("VOICE_PESQ_PATH".into(), tools.into_os_string()));
    let mut args = vec!["run", "--release", "--quiet", "-p", "voice-examples", "--bin", "voice-quality"];
    if !extra.is_empty() {
        args.push("--");
    }
    cargo(root, &envs, &args, extra)
}

fn test(root: &Path, envs: &Envs, extra: &[String]) -> Result<(), String> {
    cargo(root, envs, &["test", "--workspace"], extra)
}

/// Whether ALSA's development files are there (for the cpal backend). When they or the PulseAudio pieces of the
/// device test are missing and we run as root with apt-get (CI), Debian's packages are installed first:
/// `libasound2-dev pkg-config` to build, `pulseaudio pulseaudio-utils libasound2-plugins` for the test that plays
/// and records through a private PulseAudio null sink (it skips, saying why, without them).
fn alsa_headers() -> bool {
    let alsa = || succeeds(Command::new("pkg-config").args(["--exists", "alsa"]));
    let pulse = succeeds(Command::new("pulseaudio").arg("--version"));
    if alsa() && pulse {
        return true;
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root || !succeeds(Command::new("apt-get").arg("--version")) {
        return alsa();
    }
    let packages = ["libasound2-dev", "pkg-config", "pulseaudio", "pulseaudio-utils", "libasound2-plugins"];
    eprintln!("xtask: installing {} with apt-get (sound-card backend and its device test)", packages.join(" "));
    let quiet = |c: &mut Command| succeeds(c.env("DEBIAN_FRONTEND", "noninteractive"));
    let _ = quiet(Command::new("apt-get").args(["update", "-qq"]))
        && quiet(Command::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends"]).args(packages));
    alsa()
}

fn ci(root: &Path, envs: &Envs) -> Result<(), String> {
    cargo(root, envs, &["fmt", "--all", "--check"], &[])?;
    cargo(root, envs, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
    // Optional backends that need no system libraries are linted and tested too.
    cargo(
        root,
        envs,
        &["clippy", "-p", "voice-codec", "--all-targets", "--features", "aec", "--", "-D", "warnings"],
        &[],
    )?;
    cargo(
        root,
        envs,
        &["clippy", "-p", "voice-client", "--all-targets", "--features", "aec", "--", "-D", "warnings"],
        &[],
    )?;
    let mut doc_envs = envs.clone();
    doc_envs.push(("RUSTDOCFLAGS".into(), "-D warnings".into()));
    cargo(root, &doc_envs, &["doc", "--workspace", "--no-deps"], &[])?;
    // Every library crate with optional parts, with none of them: the relay core without its tokio drivers, the
    // client's sans-IO session and media without the driver or the file backend, the codec without its extras (as a
    // crate that embeds them with its own I/O builds them). The server application is covered by the workspace-wide
    // steps.
    for krate in ["voice-relay", "voice-client", "voice-codec"] {
        cargo(root, envs, &["clippy", "-p", krate, "--no-default-features", "--", "-D", "warnings"], &[])?;
    }
    test(root, envs, &[])?;
    cargo(root, envs, &["test", "-p", "voice-codec", "--features", "aec"], &[])?;
    cargo(root, envs, &["test", "-p", "voice-client", "--features", "aec", "--test", "echo"], &[])?;
    // The sound-card backend (cpal) needs ALSA's headers: installed from Debian's packages when CI runs as root,
    // otherwise the step is skipped with a note (the default build never needs them).
    if alsa_headers() {
        let cpal = ["-p", "voice-client", "--all-targets", "--features", "cpal"];
        cargo(root, envs, &[&["clippy"][..], &cpal[..], &["--", "-D", "warnings"][..]].concat(), &[])?;
        cargo(root, envs, &[&["test"][..], &cpal[..]].concat(), &[])?;
    } else {
        eprintln!("xtask: SKIPPED the cpal backend (no ALSA headers and no root to `apt-get install libasound2-dev`)");
    }
    cargo(root, envs, &["bench", "--workspace", "--no-run"], &[])?;
    cargo(root, envs, &["build", "--manifest-path", "fuzz/Cargo.toml", "--bins"], &[])?;
    // With the nightly toolchain already on the machine, every fuzz target also runs for 30 s under libFuzzer.
    fuzz::ci(root, envs)?;
    eprintln!("xtask: ci passed");
    Ok(())
}
