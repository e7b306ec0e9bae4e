//! `libchat demo`: Saro and Raya chat end to end on real database files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use libchat::{Client, ClientConfig, DatabaseConfig, Received, Sent};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::Global;

/// Arguments of `demo`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Directory for the two databases (default: a temporary directory, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Messages to exchange in total, both directions.
    #[arg(long, default_value_t = 1000)]
    pub messages: usize,
    /// Largest burst one side sends before the other answers; each burst is delivered in a
    /// shuffled order.
    #[arg(long, default_value_t = 8)]
    pub burst: usize,
    /// Seed of the delivery shuffles (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            dir: None,
            messages: 1000,
            burst: 8,
            seed: None,
        }
    }
}

struct Party {
    name: &'static str,
    path: PathBuf,
    client: Client,
    convo: String,
}

#[derive(Default)]
struct Tally {
    sent: usize,
    received: usize,
    out_of_order: usize,
    duplicates_refused: usize,
}

fn open(global: &Global, path: &Path, name: &'static str) -> Result<Client> {
    let db = DatabaseConfig::file(path).with_durability(global.durability.into());
    Client::open(ClientConfig::new(db, name))
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Runs the demo.
pub(crate) fn run(global: &Global, args: &DemoArgs) -> Result<()> {
    ensure!(args.messages >= 2, "--messages must be at least 2");
    ensure!(args.burst >= 1, "--burst must be at least 1");
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let saro_path = dir.join("saro.db");
    let raya_path = dir.join("raya.db");
    for path in [&saro_path, &raya_path] {
        if path.exists() {
            bail!(
                "{} already exists: give the demo an empty --dir",
                path.display()
            );
        }
    }
    let seed = args.seed.unwrap_or_else(|| rand::thread_rng().r#gen());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let mut seen: HashSet<String> = HashSet::new();
    let started = Instant::now();

    // Raya publishes an intro bundle; Saro connects with a first message.
    let mut raya_client = open(global, &raya_path, "raya")?;
    let mut saro_client = open(global, &saro_path, "saro")?;
    let bundle = raya_client.create_intro_bundle()?;
    let first = "saro #0: hello Raya, here is my invite".to_owned();
    let sent = saro_client.start_conversation(&bundle, first.as_bytes())?;
    tally.sent += 1;
    let raya_convo = match raya_client.receive(&sent.envelope.bytes)? {
        Received::Content {
            conversation_id,
            content,
            is_new_conversation,
            inbox_id,
            ..
        } => {
            ensure!(
                is_new_conversation,
                "the handshake did not create a conversation"
            );
            ensure!(
                content == first.as_bytes(),
                "the first message arrived altered"
            );
            raya_client.acknowledge(inbox_id)?;
            conversation_id
        }
        other => bail!("the handshake was not accepted: {other:?}"),
    };
    saro_client.mark_delivered(sent.outbox_id)?;
    tally.received += 1;
    seen.insert(first);
    let mut saro = Party {
        name: "saro",
        path: saro_path,
        client: saro_client,
        convo: sent.conversation_id,
    };
    let mut raya = Party {
        name: "raya",
        path: raya_path,
        client: raya_client,
        convo: raya_convo,
    };
    say(
        global,
        &format!(
            "handshake done: saro {} <-> raya {}",
            saro.convo, raya.convo
        ),
    );

    let mut restarted = false;
    let mut raya_turn = true;
    while tally.sent < args.messages {
        if !restarted && tally.sent >= args.messages / 2 {
            // Close both clients and reopen them from their files.
            let (saro_path, raya_path) = (saro.path.clone(), raya.path.clone());
            drop(std::mem::replace(
                &mut saro.client,
                open(global, &saro_path, "saro")?,
            ));
            drop(std::mem::replace(
                &mut raya.client,
                open(global, &raya_path, "raya")?,
            ));
            restarted = true;
            say(
                global,
                &format!(
                    "both clients closed and reopened after {} messages",
                    tally.sent
                ),
            );
        }
        let burst = rng
            .gen_range(1..=args.burst)
            .min(args.messages - tally.sent);
        let (from, to) = if raya_turn {
            (&mut raya, &mut saro)
        } else {
            (&mut saro, &mut raya)
        };
        exchange(from, to, burst, &mut rng, &mut tally, &mut seen)?;
        raya_turn = !raya_turn;
    }
    let elapsed = started.elapsed();

    ensure!(
        tally.received == tally.sent,
        "{} sent but {} received",
        tally.sent,
        tally.received
    );
    ensure!(seen.len() == tally.sent, "some message was delivered twice");
    for party in [&mut saro, &mut raya] {
        ensure!(
            party.client.outbox(1)?.is_empty(),
            "{}'s outbox is not empty",
            party.name
        );
        ensure!(
            party.client.inbox(1)?.is_empty(),
            "{}'s inbox is not empty",
            party.name
        );
    }
    let saro_size = saro.client.database_size()?.bytes();
    let raya_size = raya.client.database_size()?.bytes();
    let history = saro.client.history(&saro.convo, usize::MAX)?.len();
    summary(
        global, args, seed, &tally, elapsed, saro_size, raya_size, history, &dir,
    );
    Ok(())
}

/// `from` sends `burst` messages; `to` receives them in a shuffled order, one of them twice.
fn exchange(
    from: &mut Party,
    to: &mut Party,
    burst: usize,
    rng: &mut StdRng,
    tally: &mut Tally,
    seen: &mut HashSet<String>,
) -> Result<()> {
    let mut batch: Vec<(usize, String, Sent)> = Vec::with_capacity(burst);
    for i in 0..burst {
        let text = format!(
            "{} #{}: message {} of this burst",
            from.name,
            tally.sent,
            i + 1
        );
        let sent = from.client.send(&from.convo, text.as_bytes())?;
        tally.sent += 1;
        batch.push((i, text, sent));
    }
    batch.shuffle(rng);
    tally.out_of_order += batch
        .iter()
        .enumerate()
        .filter(|(pos, (i, _, _))| pos != i)
        .count();
    for (_, text, sent) in &batch {
        match to.client.receive(&sent.envelope.bytes)? {
            Received::Content {
                conversation_id,
                content,
                inbox_id,
                ..
            } => {
                ensure!(
                    conversation_id == to.convo,
                    "delivered to the wrong conversation"
                );
                ensure!(content == text.as_bytes(), "message arrived altered");
                ensure!(seen.insert(text.clone()), "message delivered twice: {text}");
                to.client.acknowledge(inbox_id)?;
                tally.received += 1;
            }
            other => bail!(
                "{} could not read a message from {}: {other:?}",
                to.name,
                from.name
            ),
        }
        from.client.mark_delivered(sent.outbox_id)?;
    }
    // The transport redelivers one envelope: it must be refused as a duplicate.
    if let Some((_, _, sent)) = batch.first() {
        match to.client.receive(&sent.envelope.bytes)? {
            Received::Duplicate => tally.duplicates_refused += 1,
            other => bail!("a redelivered envelope was not refused: {other:?}"),
        }
    }
    Ok(())
}

fn say(global: &Global, line: &str) {
    if !global.json {
        println!("{line}");
    }
}

#[allow(clippy::too_many_arguments)]
fn summary(
    global: &Global,
    args: &DemoArgs,
    seed: u64,
    tally: &Tally,
    elapsed: Duration,
    saro_size: u64,
    raya_size: u64,
    history: usize,
    dir: &Path,
) {
    let rate = tally.received as f64 / elapsed.as_secs_f64().max(1e-9);
    let durability = format!("{:?}", global.durability).to_lowercase();
    if global.json {
        println!(
            "{}",
            json!({
                "messages_sent": tally.sent,
                "messages_received": tally.received,
                "out_of_order_deliveries": tally.out_of_order,
                "duplicates_refused": tally.duplicates_refused,
                "restarted": true,
                "elapsed_ms": elapsed.as_millis() as u64,
                "messages_per_second": rate,
                "saro_db_bytes": saro_size,
                "raya_db_bytes": raya_size,
                "history_entries": history,
                "durability": durability,
                "seed": seed,
                "dir": args.dir.as_ref().map(|_| dir.display().to_string()),
            })
        );
    } else {
        println!("--- summary ---");
        println!(
            "messages      {} sent, {} received, every one exactly once",
            tally.sent, tally.received
        );
        println!(
            "reordering    {} deliveries out of order, {} redeliveries refused as duplicates",
            tally.out_of_order, tally.duplicates_refused
        );
        println!("restart       both clients closed and reopened half-way");
        println!(
            "throughput    {rate:.0} messages/s (full cycle: send, receive, acknowledge, mark delivered; {durability} durability, {:.2?} total)",
            elapsed
        );
        println!(
            "databases     saro {} KiB, raya {} KiB; saro's history has {history} entries",
            saro_size / 1024,
            raya_size / 1024
        );
        println!("seed          {seed}");
        if args.dir.is_some() {
            println!("files         {}", dir.display());
        }
    }
}
