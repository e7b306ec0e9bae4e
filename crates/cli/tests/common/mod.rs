//! Running the `libchat` binary from the CLI tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One invocation of the binary: arguments, environment, standard input.
pub(crate) struct Run {
    dir: PathBuf,
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
}

/// `libchat ARGS` in `dir`, with `LIBCHAT_DB` and `LIBCHAT_EXCHANGE` removed from the
/// environment and standard input empty unless [`Run::stdin`] gives one.
pub(crate) fn libchat<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Run {
    Run {
        dir: dir.to_path_buf(),
        args: args.iter().map(|a| a.as_ref().to_owned()).collect(),
        env: Vec::new(),
        stdin: None,
    }
}

impl Run {
    /// Sets an environment variable.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Feeds `bytes` on standard input.
    pub(crate) fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs it; fails the test if it runs for more than two minutes (a hang).
    pub(crate) fn output(self) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_libchat"));
        command
            .current_dir(&self.dir)
            .args(&self.args)
            .env_remove("LIBCHAT_DB")
            .env_remove("LIBCHAT_EXCHANGE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("run libchat");
        let mut stdin = child.stdin.take().unwrap();
        let input = self.stdin.unwrap_or_default();
        let writer = std::thread::spawn(move || {
            // The child may exit without reading it all.
            let _ = stdin.write_all(&input);
        });
        let reader = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                pipe.read_to_end(&mut bytes).unwrap();
                bytes
            })
        };
        let stdout = reader(Box::new(child.stdout.take().unwrap()));
        let stderr = reader(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!(
                    "libchat {:?} hung:\n{}",
                    self.args,
                    String::from_utf8_lossy(&stderr.join().unwrap())
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        writer.join().unwrap();
        Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }

    /// Runs it and requires success; returns stdout.
    pub(crate) fn ok(self) -> String {
        let args = self.args.clone();
        let out = self.output();
        assert!(
            out.status.success(),
            "libchat {args:?} failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs it and requires success; returns stdout as JSON lines.
    pub(crate) fn json(self) -> Vec<serde_json::Value> {
        json_lines(&self.ok())
    }
}

/// Parses JSON lines.
pub(crate) fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

/// Standard error as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard output as text.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two plain installations, `saro.db` and `raya.db`, in `dir`, sharing `dir/exchange`; Saro
/// connected to Raya with `first`, and Raya received it. Returns (saro's, raya's) conversation.
pub(crate) fn connected_pair(dir: &Path, first: &str) -> (String, String) {
    libchat(dir, &["--db", "raya.db", "init", "--name", "raya"]).ok();
    libchat(dir, &["--db", "saro.db", "init", "--name", "saro"]).ok();
    let bundle = libchat(dir, &["--db", "raya.db", "--json", "intro"]).json()[0]["bundle"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = libchat(
        dir,
        &["--db", "saro.db", "--json", "connect", &bundle, first],
    )
    .json();
    let saro_convo = started[0]["conversation"].as_str().unwrap().to_owned();
    let got = libchat(dir, &["--db", "raya.db", "--json", "receive"]).json();
    assert_eq!(got.len(), 1, "{got:?}");
    let raya_convo = got[0]["conversation"].as_str().unwrap().to_owned();
    (saro_convo, raya_convo)
}

/// The names of the entries of `dir`, sorted.
pub(crate) fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
