//! Headless Chromium driven by Playwright (npm `playwright-core`, in
//! `tests/browser/`), for the dashboard's tests: a Node script per test does
//! the clicking and asserting; this runs it with a JSON description of what
//! the Rust side set up, and fails with its output when it fails.
//!
//! Chromium is Debian's (`/usr/bin/chromium`, or `$CHROMIUM`); `scripts/test`
//! installs it, Node and the npm package when they are missing and sets
//! `CARTEIRO_TEST_BROWSER=1`, so under it a missing piece fails the test.
//! Elsewhere (a plain `cargo test`) the test says what is missing and skips.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one browser script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

/// Where the scripts and their `node_modules` are.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Where screenshots are kept (the tests' artefacts, under `target/`).
pub fn screenshots_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("ui-screenshots")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// The Chromium to drive, or why there is none (after failing the test when
/// `CARTEIRO_TEST_BROWSER` says the browser must be there).
pub fn chromium() -> Option<PathBuf> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let missing = if !chromium.exists() {
        Some(format!("no Chromium at {}", chromium.display()))
    } else if !scripts_dir().join("node_modules/playwright-core").exists() {
        Some(format!(
            "no playwright-core in {} (npm ci there)",
            scripts_dir().display()
        ))
    } else if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        Some("no node".to_owned())
    } else {
        None
    };
    match missing {
        None => Some(chromium),
        Some(why) if std::env::var_os("CARTEIRO_TEST_BROWSER").is_some() => {
            panic!("browser tests cannot run: {why}; scripts/test installs it")
        }
        Some(why) => {
            eprintln!("SKIPPED: browser test: {why} (scripts/test installs it)");
            None
        }
    }
}

/// Runs `tests/browser/SCRIPT` with `input` (JSON, in `$CARTEIRO_UI_INPUT`);
/// panics with its output unless it exits 0. Returns its stdout.
pub async fn run(chromium: &Path, script: &str, input: &Value) -> String {
    let mut command = tokio::process::Command::new("node");
    command
        .arg(scripts_dir().join(script))
        .current_dir(scripts_dir())
        .env("CHROMIUM", chromium)
        .env("CARTEIRO_UI_INPUT", input.to_string())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{script} ran longer than {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run node {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}
