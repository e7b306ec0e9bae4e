//! `libchat receive`: envelopes from the exchange directory, or hex lines on standard input.
//!
//! Envelopes are processed in batches: collect a batch (read the files or lines), process it
//! with one [`Client::receive_batch`] ([`process`]), report each envelope, acknowledge the
//! shown content with one `acknowledge_batch` ([`acknowledge`]), then delete the files.
//!
//! Outcomes per envelope:
//! - content: printed, then acknowledged (an interrupted run leaves it in the inbox, and the
//!   next `receive` prints it first), then, once the batch is durable ([`Client::sync`]), the
//!   file is removed;
//! - a protocol frame or a duplicate: reported, the file removed;
//! - refused by the protocol (forged, corrupt, replayed, not an envelope, too large): reported,
//!   the file renamed to `*.rejected`;
//! - no conversation for its hint yet: reported; a file is kept for a later run;
//! - a database or I/O failure: reported, the file kept; `receive` exits with status 1 after
//!   processing everything else;
//! - not a regular file (directory, FIFO, symlink): skipped, reported, left alone.
//!
//! A handshake creates a conversation, and the files addressed to it are picked up in the same
//! run: after each pass that created a conversation, the directory is scanned again for the
//! new hints.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use libchat::{Client, ClientError, Received};
use serde_json::json;

use crate::exchange::{self, ReadError};
use crate::output::{Out, content_fields};

/// Envelopes per batch: one `Client::receive_batch` call (one transaction) and one
/// `acknowledge_batch` each.
const BATCH: usize = 256;
/// A backlog larger than this shows a progress bar (on a terminal, without `--json`).
const PROGRESS_THRESHOLD: usize = 300;

/// Where an envelope came from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Line(usize),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Line(n) => write!(f, "stdin line {n}"),
        }
    }
}

/// Counts of one run.
#[derive(Debug, Default)]
struct Tally {
    messages: usize,
    other: usize,
    /// Entries not processed for a reason other than their content (I/O, database).
    failures: usize,
}

/// Progress on a terminal for large backlogs.
struct Progress(Option<ProgressBar>);

impl Progress {
    fn new(out: &Out, total: usize) -> Self {
        if out.json() || total <= PROGRESS_THRESHOLD || !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("receiving [{bar:40}] {pos}/{len} {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Self(Some(bar))
    }

    fn grow(&self, more: usize) {
        if let Some(bar) = &self.0 {
            bar.inc_length(more as u64);
        }
    }

    fn inc(&self, n: usize) {
        if let Some(bar) = &self.0 {
            bar.inc(n as u64);
        }
    }

    /// Runs `f` with the bar hidden (for printing).
    fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.0 {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// A problem with one entry: a JSON event, or a line on stderr.
fn problem(
    out: &mut Out,
    event: &str,
    source: &Source,
    detail: &str,
    extra: serde_json::Value,
) -> Result<()> {
    if out.json() {
        let mut value = json!({"event": event, "source": source.to_string(), "detail": detail});
        if let (Some(v), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
            v.extend(extra);
        }
        out.text(&value, String::new)
    } else {
        crate::output::warn(&format!("{source}: {detail}"));
        Ok(())
    }
}

/// Processes a batch of envelopes with [`Client::receive_batch`]: one transaction (or a few,
/// over the client's batch bounds), one outcome per envelope. Should a transaction fail as a
/// whole (rolled back: a full disk, a lock held too long), the envelopes it held are received
/// one by one, so that each gets its own outcome or error.
fn process(client: &mut Client, envelopes: &[&[u8]]) -> Vec<Result<Received, ClientError>> {
    match client.receive_batch(envelopes) {
        Ok(outcomes) => outcomes,
        Err(failed) => {
            let mut outcomes = failed.completed;
            let rest = envelopes.get(outcomes.len()..).unwrap_or_default();
            outcomes.extend(rest.iter().map(|e| client.receive(e)));
            outcomes
        }
    }
}

/// Acknowledges printed content: one transaction (or a few, over the client's batch bounds).
fn acknowledge(client: &mut Client, inbox_ids: &[i64]) -> Result<()> {
    client
        .acknowledge_batch(inbox_ids)
        .map_err(|failed| failed.error)?;
    Ok(())
}

/// What to do with an envelope's file once its outcome is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposal {
    Remove,
    Keep,
    Reject,
}

/// Reports one outcome; returns what to do with the file and, for content, the inbox id to
/// acknowledge.
fn report(
    out: &mut Out,
    tally: &mut Tally,
    source: &Source,
    result: Result<Received, ClientError>,
    new_conversations: &mut Vec<String>,
) -> Result<(Disposal, Option<i64>)> {
    let file = matches!(source, Source::File(_));
    match result {
        Ok(Received::Content {
            inbox_id,
            conversation_id,
            content,
            is_new_conversation,
            ..
        }) => {
            let mut value = json!({"event": "message", "source": source.to_string(), "conversation": conversation_id, "new_conversation": is_new_conversation});
            content_fields(&content, &mut value);
            out.record(&value, || {
                let mut line = if is_new_conversation {
                    format!("[{conversation_id}] (new conversation) ")
                } else {
                    format!("[{conversation_id}] ")
                }
                .into_bytes();
                line.extend_from_slice(&content);
                line
            })?;
            if is_new_conversation {
                new_conversations.push(conversation_id);
            }
            tally.messages += 1;
            Ok((Disposal::Remove, Some(inbox_id)))
        }
        Ok(Received::Frame {
            conversation_id,
            is_new_conversation,
        }) => {
            out.text(
                &json!({"event": "frame", "source": source.to_string(), "conversation": conversation_id, "new_conversation": is_new_conversation}),
                || format!("[{conversation_id}] (protocol frame)"),
            )?;
            if is_new_conversation {
                new_conversations.push(conversation_id);
            }
            tally.other += 1;
            Ok((Disposal::Remove, None))
        }
        Ok(Received::UnknownConversation { hint }) => {
            let detail = if file {
                format!("no conversation for hint {hint} yet; kept for a later run")
            } else {
                format!("no conversation for hint {hint}")
            };
            problem(
                out,
                "unknown_conversation",
                source,
                &detail,
                json!({"hint": hint}),
            )?;
            tally.other += 1;
            Ok((Disposal::Keep, None))
        }
        Ok(Received::Duplicate) => {
            problem(out, "duplicate", source, "already received", json!({}))?;
            tally.other += 1;
            Ok((Disposal::Remove, None))
        }
        Ok(Received::Empty) => {
            problem(out, "empty", source, "empty envelope", json!({}))?;
            tally.other += 1;
            Ok((Disposal::Remove, None))
        }
        Err(error @ (ClientError::Chat(_) | ClientError::Bundle(_))) => {
            let detail = if file {
                format!("rejected ({error}); moved aside")
            } else {
                format!("rejected ({error})")
            };
            problem(
                out,
                "rejected",
                source,
                &detail,
                json!({"error": error.to_string()}),
            )?;
            tally.other += 1;
            Ok((Disposal::Reject, None))
        }
        Err(error) => {
            let detail = if file {
                format!("not processed ({error}); kept")
            } else {
                format!("not processed ({error})")
            };
            problem(
                out,
                "error",
                source,
                &detail,
                json!({"error": error.to_string()}),
            )?;
            tally.failures += 1;
            Ok((Disposal::Keep, None))
        }
    }
}

/// Prints the content an interrupted run received but did not get to show (it is still in the
/// inbox), and acknowledges it.
fn pending_inbox(out: &mut Out, client: &mut Client, tally: &mut Tally) -> Result<()> {
    let pending = client.inbox(usize::MAX)?;
    let mut ids = Vec::with_capacity(pending.len());
    for entry in pending {
        let mut value = json!({"event": "message", "source": "inbox", "conversation": entry.conversation_id, "new_conversation": entry.is_new_conversation});
        content_fields(&entry.content, &mut value);
        out.record(&value, || {
            let mut line = format!("[{}] (received earlier) ", entry.conversation_id).into_bytes();
            line.extend_from_slice(&entry.content);
            line
        })?;
        ids.push(entry.id);
        tally.messages += 1;
    }
    acknowledge(client, &ids)
}

/// Ends a run: "nothing to receive" when there was nothing, a failure when an entry could not
/// be processed for a reason other than its content.
fn finish(out: &mut Out, tally: &Tally) -> Result<()> {
    if tally.messages + tally.other + tally.failures == 0 {
        out.say("nothing to receive")?;
    }
    if tally.failures > 0 {
        bail!(
            "{} envelope(s) could not be processed (see above); they were kept, run `libchat receive` again",
            tally.failures
        );
    }
    Ok(())
}

/// One entry of a batch, as read.
enum Item {
    /// An envelope to process.
    Envelope(Vec<u8>),
    /// Refused before processing (not hex, too large): reported, a file moved aside.
    Refused(String),
    /// Not a regular file: reported, left alone.
    Skipped(&'static str),
    /// Could not be read: reported, kept, the run fails at the end.
    Failed(String),
}

/// Processes a batch and reports every entry in order; returns what to do with each entry's
/// file. The envelopes go to [`process`] together, the content is acknowledged together.
fn run_batch(
    out: &mut Out,
    client: &mut Client,
    batch: Vec<(Source, Item)>,
    bar: &Progress,
    tally: &mut Tally,
    new_conversations: &mut Vec<String>,
) -> Result<Vec<(Source, Disposal)>> {
    let envelopes: Vec<&[u8]> = batch
        .iter()
        .filter_map(|(_, item)| match item {
            Item::Envelope(bytes) => Some(bytes.as_slice()),
            _ => None,
        })
        .collect();
    let mut results = process(client, &envelopes).into_iter();
    let mut disposals = Vec::with_capacity(batch.len());
    let mut inbox_ids = Vec::new();
    bar.suspend(|| -> Result<()> {
        for (source, item) in batch {
            let disposal = match item {
                Item::Envelope(_) => {
                    let Some(result) = results.next() else {
                        bail!("internal: fewer outcomes than envelopes");
                    };
                    let (disposal, inbox_id) =
                        report(out, tally, &source, result, new_conversations)?;
                    inbox_ids.extend(inbox_id);
                    disposal
                }
                Item::Refused(why) => {
                    tally.other += 1;
                    let detail = match source {
                        Source::File(_) => format!("rejected ({why}); moved aside"),
                        Source::Line(_) => format!("rejected ({why})"),
                    };
                    problem(out, "rejected", &source, &detail, json!({"error": why}))?;
                    Disposal::Reject
                }
                Item::Skipped(kind) => {
                    problem(
                        out,
                        "skipped",
                        &source,
                        &format!("{kind}, not a regular file; skipped"),
                        json!({}),
                    )?;
                    Disposal::Keep
                }
                Item::Failed(why) => {
                    tally.failures += 1;
                    problem(
                        out,
                        "error",
                        &source,
                        &format!("{why}; kept"),
                        json!({"error": why}),
                    )?;
                    Disposal::Keep
                }
            };
            disposals.push((source, disposal));
        }
        Ok(())
    })?;
    acknowledge(client, &inbox_ids)?;
    // The durability barrier before any file is removed: with `--durability normal` a receive
    // is not yet power-loss durable when it returns, and its envelope must stay in the exchange
    // directory until it is (nothing to do with Full).
    // (PostgreSQL: every commit is already as durable as the server makes it.)
    if !client.is_postgres() {
        client.sync()?;
    }
    Ok(disposals)
}

/// Removes or moves aside a processed file; a failure is reported and fails the run.
fn dispose(out: &mut Out, tally: &mut Tally, source: &Source, disposal: Disposal) -> Result<()> {
    let Source::File(path) = source else {
        return Ok(());
    };
    let failed = match disposal {
        Disposal::Keep => return Ok(()),
        Disposal::Remove => match std::fs::remove_file(path) {
            Ok(()) => return Ok(()),
            // Another receiver on the same database took it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => format!("processed, but cannot remove it: {e}"),
        },
        Disposal::Reject => {
            let rejected = exchange::rejected_path(path);
            match std::fs::rename(path, &rejected) {
                Ok(()) => return Ok(()),
                Err(e) => format!("cannot move it to {}: {e}", rejected.display()),
            }
        }
    };
    tally.failures += 1;
    problem(out, "error", source, &failed, json!({"error": failed}))
}

/// Receives the envelopes addressed to us in `dir`.
pub(crate) fn from_dir(out: &mut Out, client: &mut Client, dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("exchange directory {} does not exist", dir.display());
    }
    let mut tally = Tally::default();
    pending_inbox(out, client, &mut tally)?;
    let mut hints: HashSet<String> = client
        .conversations()?
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    hints.insert(client.inbox_id().to_owned());
    // Every entry looked at in this run: a kept file is not retried in the same run.
    let mut done: HashSet<PathBuf> = HashSet::new();
    let mut progress: Option<Progress> = None;
    loop {
        let scan = exchange::scan(dir, &hints, &done)?;
        let mut entries: Vec<(Source, Option<Item>)> = Vec::new();
        for skipped in scan.skipped {
            entries.push((
                Source::File(skipped.path),
                Some(Item::Skipped(skipped.kind)),
            ));
        }
        for unreadable in scan.unreadable {
            let why = format!("{:#}", unreadable.error);
            entries.push((Source::File(unreadable.path), Some(Item::Failed(why))));
        }
        let found = scan.files.len();
        entries.extend(
            scan.files
                .into_iter()
                .map(|path| (Source::File(path), None)),
        );
        if entries.is_empty() {
            break;
        }
        let bar = match &progress {
            Some(bar) => {
                bar.grow(found);
                bar
            }
            None => progress.insert(Progress::new(out, found)),
        };
        let mut new_conversations = Vec::new();
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            // Read a batch: at most BATCH envelope files.
            let mut batch = Vec::new();
            let mut files = 0;
            while files < BATCH {
                let Some((source, item)) = entries.next() else {
                    break;
                };
                let Source::File(path) = &source else {
                    continue;
                };
                done.insert(path.clone());
                let item = match item {
                    Some(item) => item,
                    None => {
                        files += 1;
                        match exchange::read_envelope(path) {
                            Ok(bytes) => Item::Envelope(bytes),
                            Err(ReadError::NotRegular(kind)) => Item::Skipped(kind),
                            Err(e @ ReadError::TooLarge(_)) => Item::Refused(e.to_string()),
                            Err(e @ ReadError::Io(_)) => Item::Failed(e.to_string()),
                        }
                    }
                };
                batch.push((source, item));
            }
            let disposals = run_batch(out, client, batch, bar, &mut tally, &mut new_conversations)?;
            for (source, disposal) in &disposals {
                bar.suspend(|| dispose(out, &mut tally, source, *disposal))?;
            }
            bar.inc(files);
        }
        if new_conversations.is_empty() {
            break;
        }
        // Follow-ups of the handshakes just processed: scan again for their hints.
        hints.extend(new_conversations);
    }
    drop(progress);
    finish(out, &tally)
}

/// A line of standard input: its bytes (without the newline), or too long to be an envelope.
enum Line {
    Text(Vec<u8>),
    TooLong,
}

/// Reads the next line, holding at most `limit` bytes of it (a longer one is read through and
/// reported as [`Line::TooLong`]); `None` at the end.
fn read_line(reader: &mut impl BufRead, limit: usize) -> std::io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut any = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            let line = if too_long {
                Line::TooLong
            } else {
                Line::Text(line)
            };
            return Ok(any.then_some(line));
        }
        any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        if !too_long {
            if line.len() + chunk.len() > limit {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let consumed = newline.map_or(buf.len(), |i| i + 1);
        reader.consume(consumed);
        if newline.is_some() {
            return Ok(Some(if too_long {
                Line::TooLong
            } else {
                Line::Text(line)
            }));
        }
    }
}

/// Receives hex-encoded envelopes, one per line, from standard input: every line is processed,
/// a bad one is reported with its line number. Blank lines are ignored.
pub(crate) fn from_stdin(out: &mut Out, client: &mut Client) -> Result<()> {
    let mut tally = Tally::default();
    pending_inbox(out, client, &mut tally)?;
    let stdin = std::io::stdin();
    let mut reader = stdin.lock();
    // Hex, and a little room for a carriage return and spaces.
    let limit = 2 * libchat::MAX_ENVELOPE_LEN + 16;
    let mut number = 0;
    let mut exhausted = false;
    let no_progress = Progress(None);
    while !exhausted {
        // Collect a batch of lines.
        let mut batch: Vec<(Source, Item)> = Vec::new();
        let mut envelopes = 0;
        while envelopes < BATCH {
            let Some(line) = read_line(&mut reader, limit)
                .with_context(|| format!("cannot read standard input after line {number}"))?
            else {
                exhausted = true;
                break;
            };
            number += 1;
            let source = Source::Line(number);
            let item = match &line {
                Line::TooLong => Item::Refused("longer than any envelope".to_owned()),
                Line::Text(bytes) => {
                    let text = bytes.trim_ascii();
                    if text.is_empty() {
                        continue;
                    }
                    match hex::decode(text) {
                        Ok(bytes) => {
                            envelopes += 1;
                            Item::Envelope(bytes)
                        }
                        Err(e) => Item::Refused(format!("not hex: {e}")),
                    }
                }
            };
            batch.push((source, item));
        }
        let mut new_conversations = Vec::new();
        run_batch(
            out,
            client,
            batch,
            &no_progress,
            &mut tally,
            &mut new_conversations,
        )?;
    }
    finish(out, &tally)
}
