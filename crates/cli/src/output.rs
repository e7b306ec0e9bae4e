//! What the CLI writes: a peer's bytes never reach the terminal as control sequences.
//!
//! - Human output (the default) escapes every control character except newline and tab — C0
//!   (`ESC` starts CSI and OSC sequences, `CR` overwrites a line), `DEL`, C1 (`U+009B` is an
//!   8-bit CSI) — plus the bidirectional overrides and isolates and the Unicode line and
//!   paragraph separators (they disguise text), and bytes that are not UTF-8: `\x1b`,
//!   `\u{9b}`, `\u{202e}`, `\xff`. It applies to everything printed, file names and error
//!   messages included (an exchange directory's file names come from whoever can write
//!   there).
//! - `--json` keeps the exact content, JSON-escaped: control characters, C1, DEL and the
//!   characters above as `\uXXXX`, so a JSON line is plain printable text too. Content that is
//!   not UTF-8 adds its bytes in hex (`message_hex`).
//! - `--raw` (`receive`, `history`) writes message content byte for byte, for a pipe; it
//!   refuses to write to a terminal.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use libchat::Timestamp;

/// How records are written on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Human text, escaped.
    Human,
    /// Human text with content byte for byte (`--raw`).
    Raw,
    /// One JSON object per line (`--json`).
    Json,
}

/// Characters escaped in human output besides the controls: bidirectional marks, embeddings,
/// overrides and isolates (they reorder what is displayed), and the line and paragraph
/// separators (some terminals and viewers break lines there).
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}'
    )
}

/// `bytes` made safe for a terminal: see the module documentation.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' | '\t' => out.push(c),
                c if (c as u32) < 0x20 || c == '\x7f' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() || is_deceptive(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A JSON formatter that also escapes DEL, C1 controls and the characters of
/// [`is_deceptive`] (serde_json escapes only `"`, `\` and C0).
struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_control() || is_deceptive(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// `value` as one JSON line of printable text.
pub(crate) fn json_line(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, SafeFormatter);
    // Serializing a `Value` into a Vec cannot fail.
    let _ = serde::Serialize::serialize(value, &mut serializer);
    String::from_utf8_lossy(&out).into_owned()
}

/// Content for JSON: `message` (the text; lossy if the content is not UTF-8) and, when it is
/// not UTF-8, `message_hex` with the exact bytes.
pub(crate) fn content_fields(content: &[u8], object: &mut serde_json::Value) {
    match std::str::from_utf8(content) {
        Ok(text) => object["message"] = text.into(),
        Err(_) => {
            object["message"] = String::from_utf8_lossy(content).into_owned().into();
            object["message_hex"] = hex::encode(content).into();
        }
    }
}

/// A time as local RFC 3339 (`2026-11-30T14:03:12+01:00`), from the TZ variable or
/// /etc/localtime; epoch milliseconds if out of range.
pub(crate) fn local_time(time: Timestamp) -> String {
    match chrono::DateTime::from_timestamp_millis(time.as_millis()) {
        Some(utc) => utc
            .with_timezone(&chrono::Local)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        None => format!("{} ms since the epoch", time.as_millis()),
    }
}

/// Standard output, in one [`Mode`]. Errors (a closed pipe) are returned, not panicked on.
pub(crate) struct Out {
    mode: Mode,
    stdout: std::io::Stdout,
}

impl Out {
    /// Output in `mode`; `--raw` is refused when stdout is a terminal.
    pub(crate) fn new(mode: Mode) -> Result<Self> {
        let stdout = std::io::stdout();
        if mode == Mode::Raw && stdout.is_terminal() {
            bail!(
                "--raw writes a peer's bytes unescaped, for a pipe or a file; standard output is a terminal (leave out --raw)"
            );
        }
        Ok(Self { mode, stdout })
    }

    /// True with `--json`.
    pub(crate) fn json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// Writes one record that carries a peer's content: `value` as a JSON line with `--json`,
    /// else the human line (escaped, and every line of a multi-line content indented by two
    /// spaces so that no content line can pass for a record of its own; byte for byte with
    /// `--raw`). The human line is built only when needed.
    pub(crate) fn record(
        &mut self,
        value: &serde_json::Value,
        human: impl FnOnce() -> Vec<u8>,
    ) -> Result<()> {
        let line = (self.mode != Mode::Json).then(human);
        self.write(value, line, true)
    }

    /// Writes one record of our own text (no content): `value` as a JSON line with `--json`,
    /// else the text, escaped (it may name files from the exchange directory).
    pub(crate) fn text(
        &mut self,
        value: &serde_json::Value,
        human: impl FnOnce() -> String,
    ) -> Result<()> {
        let line = (self.mode != Mode::Json).then(|| human().into_bytes());
        self.write(value, line, false)
    }

    fn write(
        &mut self,
        value: &serde_json::Value,
        line: Option<Vec<u8>>,
        indent: bool,
    ) -> Result<()> {
        let mut out = self.stdout.lock();
        let line = line.unwrap_or_default();
        match self.mode {
            Mode::Json => writeln!(out, "{}", json_line(value)),
            Mode::Raw => out.write_all(&line).and_then(|()| out.write_all(b"\n")),
            Mode::Human if indent => writeln!(out, "{}", escape(&line).replace('\n', "\n  ")),
            Mode::Human => writeln!(out, "{}", escape(&line)),
        }
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
    }

    /// A human line without a JSON counterpart (nothing with `--json`).
    pub(crate) fn say(&mut self, line: &str) -> Result<()> {
        if self.json() {
            return Ok(());
        }
        let mut out = self.stdout.lock();
        writeln!(out, "{}", escape(line.as_bytes()))
            .and_then(|()| out.flush())
            .context("cannot write to standard output")
    }
}

/// A one-line warning on standard error (escaped), in every mode.
pub(crate) fn warn(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "warning: {}", escape(line.as_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_but_newline_and_tab() {
        assert_eq!(
            escape(b"a\x1b[2J\x07\r\x7f\n\tb"),
            "a\\x1b[2J\\x07\\x0d\\x7f\n\tb"
        );
        assert_eq!(
            escape("\u{9b}1m \u{202e}x \u{2028}".as_bytes()),
            "\\u{9b}1m \\u{202e}x \\u{2028}"
        );
        assert_eq!(escape(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(escape("héllo, 世界 🙂".as_bytes()), "héllo, 世界 🙂");
    }

    #[test]
    fn json_lines_are_printable_and_exact() {
        let text = "\x1b]0;t\x07 \u{9b} \u{202e} \x7f é\n";
        let line = json_line(&serde_json::json!({ "message": text }));
        assert!(
            line.chars().all(|c| !c.is_control() && !is_deceptive(c)),
            "{line:?}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["message"], text);
    }

    #[test]
    fn content_that_is_not_utf8_keeps_its_bytes() {
        let mut v = serde_json::json!({});
        content_fields(b"\xffa", &mut v);
        assert_eq!(v["message_hex"], "ff61");
        let mut v = serde_json::json!({});
        content_fields(b"ok", &mut v);
        assert_eq!(v["message"], "ok");
        assert!(v.get("message_hex").is_none());
    }
}
