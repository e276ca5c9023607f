//! `cargo xtask fuzz [--seconds N] [--runs N] [--target NAME]… [-- LIBFUZZER_ARGS…]`: runs the cargo-fuzz targets
//! of `fuzz/` under libFuzzer, one after the other, and says per target how many inputs it executed and whether it
//! stayed clean.
//!
//! * libFuzzer needs a **nightly** toolchain (sanitizer instrumentation). The one already installed is used
//!   (`cargo +nightly`, with `RUSTUP_AUTO_INSTALL=0`); a toolchain is never downloaded. Without one the command
//!   prints `SKIPPED: no nightly toolchain` and succeeds.
//! * cargo-fuzz is installed from crates.io into `target/tools` (`cargo install --root target/tools cargo-fuzz`)
//!   when it is not there yet, and put first on `PATH`.
//! * Every target in `fuzz/fuzz_targets/` runs for `--seconds` (default 60) or until `--runs` inputs (whichever
//!   comes first), one process at a time (`--jobs 1`). The checked-in corpus `fuzz/corpus/<target>/` seeds it;
//!   what libFuzzer finds new goes to `fuzz/target/xtask/corpus/<target>/`, kept between runs and never committed.
//! * A crash (panic, sanitizer report, timeout, out of memory) is copied from libFuzzer's artifact into
//!   `fuzz/corpus/<target>/`, where the stable corpus-replay tests (`tests/corpus.rs` of the crate the target
//!   fuzzes) run it as a regression from then on: fix the bug, then commit the file. The command fails.
//!
//! `cargo xtask ci` calls [`ci`]: every target for 30 s when nightly is present, otherwise `SKIPPED` with the
//! reason.
#![allow(clippy::disallowed_methods, reason = "a task runner: it times the fuzz runs it starts")]

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Envs, provision, succeeds};

/// Seconds per target when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 60;
/// Seconds per target in CI, and the most the CI step spends fuzzing in all (the per-target time shrinks when
/// there are more targets than fit).
const CI_SECONDS: u64 = 30;
const CI_BUDGET_SECONDS: u64 = 200;
/// A single input that runs longer than this is a failure (libFuzzer's `-timeout`; its default is 20 minutes).
const INPUT_TIMEOUT_SECONDS: u64 = 25;
/// The cargo-fuzz release series installed (`cargo install … cargo-fuzz --version`).
const CARGO_FUZZ_VERSION: &str = "^0.13";

/// What one target's run gave.
#[derive(Debug)]
struct Outcome {
    target: String,
    seconds: f64,
    executions: Option<u64>,
    /// `None` when clean; otherwise what went wrong and, for a crash, where its input now is.
    failure: Option<String>,
}

/// Options of `cargo xtask fuzz`.
#[derive(Debug, Default)]
struct Options {
    seconds: Option<u64>,
    runs: Option<u64>,
    targets: Vec<String>,
    libfuzzer: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    let number = |flag: &str, v: Option<&String>| -> Result<u64, String> {
        v.and_then(|v| v.parse().ok()).filter(|&n| n > 0).ok_or(format!("{flag} needs a positive whole number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => o.seconds = Some(number("--seconds", it.next())?),
            "--runs" => o.runs = Some(number("--runs", it.next())?),
            "--target" => o.targets.push(it.next().ok_or("--target needs a target name")?.clone()),
            "--" => {
                o.libfuzzer = it.by_ref().cloned().collect();
            }
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument `{other}`\n{}", usage())),
        }
    }
    Ok(o)
}

fn usage() -> String {
    format!(
        "usage: cargo xtask fuzz [--seconds N] [--runs N] [--target NAME]... [-- LIBFUZZER_ARGS...]\n  \
         runs every target of fuzz/fuzz_targets (or the named ones) with libFuzzer on the installed nightly \
         toolchain,\n  for N seconds each (default {DEFAULT_SECONDS}) or until N inputs ran; installs cargo-fuzz into \
         target/tools if needed"
    )
}

/// `cargo xtask fuzz …`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    if let Err(why) = nightly() {
        println!("SKIPPED: no nightly toolchain ({why})");
        return Ok(());
    }
    let envs = &provision(root, true)?;
    let all = targets(root)?;
    let chosen = if o.targets.is_empty() {
        all
    } else {
        for t in &o.targets {
            if !all.contains(t) {
                return Err(format!("no fuzz target `{t}` (there are: {})", all.join(", ")));
            }
        }
        o.targets.clone()
    };
    fuzz(root, envs, &chosen, o.seconds.unwrap_or(DEFAULT_SECONDS), o.runs, &o.libfuzzer)
}

/// The CI step: every target for [`CI_SECONDS`] with nightly, `SKIPPED` without.
pub(crate) fn ci(root: &Path, envs: &Envs) -> Result<(), String> {
    if let Err(why) = nightly() {
        eprintln!("xtask: SKIPPED the fuzzers: no nightly toolchain ({why}); they need one for libFuzzer");
        return Ok(());
    }
    let all = targets(root)?;
    let seconds = CI_SECONDS.min(CI_BUDGET_SECONDS / all.len().max(1) as u64).max(1);
    fuzz(root, envs, &all, seconds, None, &[])
}

/// `Ok` if `cargo +nightly` can run without installing anything; otherwise why not.
fn nightly() -> Result<(), String> {
    let out = Command::new("rustup")
        .args(["toolchain", "list"])
        .env("RUSTUP_AUTO_INSTALL", "0")
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `rustup toolchain list`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`rustup toolchain list` failed ({})", out.status));
    }
    // `+nightly` names the undated channel: `nightly-<host triple>`, not `nightly-2025-01-01-<host>`.
    let listed = String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.split_whitespace()
            .next()
            .and_then(|name| name.strip_prefix("nightly-"))
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
    });
    if listed { Ok(()) } else { Err("`rustup toolchain list` shows none".into()) }
}

/// Target names: the stems of `fuzz/fuzz_targets/*.rs`, sorted.
fn targets(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("fuzz/fuzz_targets");
    let entries = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(format!("no fuzz targets in {}", dir.display()));
    }
    Ok(names)
}

/// `target/tools/bin` with cargo-fuzz in it, installed from crates.io if it is not there yet.
fn cargo_fuzz(root: &Path) -> Result<PathBuf, String> {
    let tools = root.join("target/tools");
    let bin = tools.join("bin");
    if succeeds(Command::new(bin.join("cargo-fuzz")).arg("--version")) {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} from crates.io into target/tools \
         (cargo install --root target/tools cargo-fuzz; once)"
    );
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "--locked", "--root"])
        .arg(&tools)
        .args(["cargo-fuzz", "--version", CARGO_FUZZ_VERSION])
        // The target directory of the surrounding build (if set) is not the place for cargo-fuzz's own build.
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .map_err(|e| format!("could not run cargo install: {e}"))?;
    if !status.success() || !succeeds(Command::new(bin.join("cargo-fuzz")).arg("--version")) {
        return Err(format!("installing cargo-fuzz from crates.io failed ({status})"));
    }
    Ok(bin)
}

/// The environment of every `cargo +nightly fuzz` command: the provisioned one (cmake for libopus), cargo-fuzz
/// first on `PATH`, no toolchain downloads, and cargo-fuzz's own target directory (`fuzz/target`).
fn fuzz_command(root: &Path, envs: &Envs, bin: &Path) -> Result<Command, String> {
    let path = envs
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| env::var_os("PATH"))
        .unwrap_or_default();
    let path = env::join_paths(std::iter::once(bin.to_path_buf()).chain(env::split_paths(&path)))
        .map_err(|e| format!("cannot extend PATH: {e}"))?;
    // The rustup proxy, not `$CARGO` (the stable toolchain's own cargo, which knows no `+nightly`).
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .current_dir(root.join("fuzz"))
        .envs(envs.iter().filter(|(k, _)| k != "PATH").map(|(k, v)| (k, v)))
        .env("PATH", path)
        .env("RUSTUP_AUTO_INSTALL", "0")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC");
    Ok(cmd)
}

fn fuzz(
    root: &Path,
    envs: &Envs,
    targets: &[String],
    seconds: u64,
    runs: Option<u64>,
    extra: &[String],
) -> Result<(), String> {
    let bin = cargo_fuzz(root)?;
    let work = root.join("fuzz/target/xtask");
    eprintln!("xtask: building the fuzz targets (nightly, AddressSanitizer): cargo +nightly fuzz build");
    let status = fuzz_command(root, envs, &bin)?
        .args(["fuzz", "build"])
        .status()
        .map_err(|e| format!("could not run cargo +nightly fuzz build: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo +nightly fuzz build` failed ({status})"));
    }
    let mut outcomes = Vec::new();
    for t in targets {
        outcomes.push(fuzz_one(root, envs, &bin, &work, t, seconds, runs, extra)?);
    }
    println!();
    println!("{:<16} {:>8} {:>14} {:>10}  result", "target", "seconds", "executions", "exec/s");
    for o in &outcomes {
        let execs = o.executions.map_or("?".to_string(), thousands);
        let rate = o.executions.map_or("?".to_string(), |n| thousands((n as f64 / o.seconds.max(0.001)) as u64));
        let result = o.failure.as_deref().unwrap_or("clean");
        println!("{:<16} {:>8.0} {:>14} {:>10}  {result}", o.target, o.seconds, execs, rate);
    }
    let failed: Vec<&str> = outcomes.iter().filter(|o| o.failure.is_some()).map(|o| o.target.as_str()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzz targets failed: {}. Each crash input is now in fuzz/corpus/<target>/ (the stable corpus tests replay \
             it); fix the bug, then commit the file (shrink it first if you like: cd fuzz && cargo +nightly fuzz \
             tmin <target> <file>)",
            failed.join(", ")
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn fuzz_one(
    root: &Path,
    envs: &Envs,
    bin: &Path,
    work: &Path,
    target: &str,
    seconds: u64,
    runs: Option<u64>,
    extra: &[String],
) -> Result<Outcome, String> {
    let corpus = work.join("corpus").join(target);
    let seeds = root.join("fuzz/corpus").join(target);
    let logs = work.join("logs");
    for dir in [&corpus, &seeds, &logs] {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log2 = log.try_clone().map_err(|e| format!("{}: {e}", log_path.display()))?;
    let limit = runs.map_or(String::new(), |n| format!(" or {} inputs", thousands(n)));
    eprintln!("xtask: fuzzing {target} for {seconds} s{limit} (libFuzzer output: {})", log_path.display());
    let mut cmd = fuzz_command(root, envs, bin)?;
    cmd.args(["fuzz", "run", "--jobs", "1", target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg("-print_final_stats=1");
    if let Some(n) = runs {
        cmd.arg(format!("-runs={n}"));
    }
    let started = Instant::now();
    let status = cmd
        .args(extra)
        .stdout(log)
        .stderr(log2)
        .status()
        .map_err(|e| format!("could not run cargo +nightly fuzz run {target}: {e}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let (executions, fuzz_seconds) = stats(&text);
    let failure = if status.success() {
        None
    } else {
        let tail: Vec<&str> = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
        eprintln!("xtask: {target} failed ({status}); the end of its output:\n{}", tail.join("\n"));
        Some(match artifact(&text) {
            Some(found) => {
                let name = Path::new(&found).file_name().map(|n| n.to_os_string()).unwrap_or_default();
                let kept = seeds.join(&name);
                // Relative artifact paths are relative to fuzz/, where cargo-fuzz runs the target.
                let from = root.join("fuzz").join(&found);
                fs::copy(&from, &kept).map_err(|e| format!("copying {} to the corpus: {e}", from.display()))?;
                let shown = kept.strip_prefix(root).unwrap_or(&kept).display().to_string();
                format!("CRASH ({}) -> {shown}", kind_of(&text))
            }
            None => format!("FAILED ({status}) without a crash input; see {}", log_path.display()),
        })
    };
    Ok(Outcome { target: target.to_string(), seconds: fuzz_seconds.unwrap_or(elapsed), executions, failure })
}

/// Executions and fuzzing seconds from libFuzzer's output: `-print_final_stats=1` lines, else the last status line.
fn stats(text: &str) -> (Option<u64>, Option<f64>) {
    let stat = |name: &str| {
        text.lines().rev().find_map(|l| l.trim().strip_prefix(name).and_then(|v| v.trim().parse::<u64>().ok()))
    };
    let execs = stat("stat::number_of_executed_units:").or_else(|| {
        // `#123456	pulse  cov: …` / `#123456	DONE …`
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix('#').and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()))
    });
    // `Done 8420590 runs in 61 second(s)`
    let secs = text.lines().rev().find_map(|l| {
        let r = l.strip_prefix("Done ")?;
        let (_, after) = r.split_once(" runs in ")?;
        after.split_whitespace().next()?.parse::<f64>().ok()
    });
    (execs, secs)
}

/// The input libFuzzer saved for a failure (`… Test unit written to ./artifacts/x/crash-…`).
fn artifact(text: &str) -> Option<String> {
    text.lines().rev().find_map(|l| {
        let (_, path) = l.split_once("Test unit written to ")?;
        Some(path.trim().to_string())
    })
}

/// What kind of failure libFuzzer reported.
fn kind_of(text: &str) -> &'static str {
    if text.contains("ERROR: libFuzzer: timeout") {
        "timeout"
    } else if text.contains("out-of-memory") {
        "out of memory"
    } else if text.contains("ERROR: AddressSanitizer") {
        "AddressSanitizer"
    } else if text.contains("panicked at") {
        "panic"
    } else {
        "crash"
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_output() {
        let text = "#8420590\tDONE   cov: 181 ft: 199 corp: 23/376b lim: 4096 exec/s: 138042 rss: 517Mb\n\
                    stat::number_of_executed_units: 8420591\n\
                    stat::average_exec_per_sec:     138042\n\
                    Done 8420590 runs in 61 second(s)\n";
        assert_eq!(stats(text), (Some(8_420_591), Some(61.0)));
        let crashed = "#16\tNEW    cov: 50\n==1== ERROR: libFuzzer: deadly signal\n\
                       artifact_prefix='/w/fuzz/artifacts/datagram/'; Test unit written to \
                       /w/fuzz/artifacts/datagram/crash-2ec1\nBase64: AQU=\n";
        assert_eq!(stats(crashed), (Some(16), None));
        assert_eq!(artifact(crashed).as_deref(), Some("/w/fuzz/artifacts/datagram/crash-2ec1"));
        assert_eq!(kind_of(crashed), "crash");
        assert_eq!(thousands(10_000_000), "10,000,000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn parses_arguments() {
        let args: Vec<String> =
            ["--seconds", "5", "--target", "datagram", "--runs", "100", "--", "-max_len=64"].map(String::from).into();
        let o = parse(&args).unwrap();
        assert_eq!((o.seconds, o.runs), (Some(5), Some(100)));
        assert_eq!(o.targets, ["datagram"]);
        assert_eq!(o.libfuzzer, ["-max_len=64"]);
        assert!(parse(&["--seconds".to_string(), "x".to_string()]).is_err());
        assert!(parse(&["--bogus".to_string()]).is_err());
    }
}
