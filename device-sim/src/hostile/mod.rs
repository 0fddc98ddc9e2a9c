//! Hostile input at volume: `axon-device-sim hostile` (issue 15).
//!
//! Owns generating hostile inputs from a seed, feeding each to `axon-core` under
//! `catch_unwind`, and judging the outcome. Four families:
//!
//! | family | fed to |
//! |---|---|
//! | `mqtt` | broker bytes into the MQTT session (`transport::mqtt::Session`) |
//! | `rpc` | JSON-RPC / MCP payloads into both roles (`McpServer` on its RPC and control topics, `McpClient` on its RPC topic) |
//! | `args` | tool arguments into `tool::validate_arguments` against every simulated board's tools, then into the board |
//! | `routing` | topic names and user properties into a whole `Endpoint` (session + role) of either role |
//!
//! Every input must end in one of three clear outcomes: **accepted** (well-formed, handled
//! normally), a **clear error** (an error value or event with a message, a JSON-RPC error
//! response with the code an independent check of the input expects, or a protocol-error
//! close), or **ignored per spec** (a notification, a response to an unknown id, a malformed
//! response or notification, which docs/protocol.md §7 says are never answered, a topic that
//! is not this endpoint's). Anything else is **unclear**, and a failure like a panic.
//!
//! It never does I/O beyond what the caller prints, and never decides protocol behaviour:
//! the oracles only check what the core decided.

mod args;
pub mod gen;
mod mqtt;
mod routing;
mod rpc;
pub mod wire;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use gen::{input_seed, Gen};

/// The default number of inputs of a full run.
pub const DEFAULT_COUNT: u64 = 1_000_000;

/// An input family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// MQTT packets into the session.
    Mqtt,
    /// JSON-RPC / MCP messages into both MCP roles.
    Rpc,
    /// Tool arguments into validation.
    Args,
    /// Topic names and user properties at the MQTT→MCP boundary.
    Routing,
}

impl Family {
    /// Every family, in table order.
    pub const ALL: [Family; 4] = [Family::Mqtt, Family::Rpc, Family::Args, Family::Routing];

    /// The family's name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Family::Mqtt => "mqtt",
            Family::Rpc => "rpc",
            Family::Args => "args",
            Family::Routing => "routing",
        }
    }

    /// The family called `name`.
    pub fn parse(name: &str) -> Result<Family, String> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| format!("unknown family {name:?}: use mqtt, rpc, args or routing"))
    }
}

/// What one input led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Well-formed, handled normally.
    Accepted(&'static str),
    /// Refused with a clear error.
    Error {
        /// Which kind of error (the JSON-RPC code, the kind of close).
        kind: &'static str,
        /// Its message.
        message: String,
    },
    /// Dropped where the spec says to drop it; the reason names the rule.
    Ignored(&'static str),
    /// None of the above: what was wrong.
    Unclear(String),
}

/// One generated input.
#[derive(Debug, Clone)]
pub enum Input {
    /// Family 1.
    Mqtt(mqtt::Case),
    /// Family 2.
    Rpc(rpc::Case),
    /// Family 3.
    Args(args::Case),
    /// Family 4.
    Routing(routing::Case),
}

impl Input {
    /// Input `index` of a run seeded `seed` (the family is `index % 4`).
    pub fn generate(seed: u64, index: u64) -> Input {
        let family = Family::ALL[(index % 4) as usize];
        Input::generate_in(family, input_seed(seed, index))
    }

    /// An input of `family` from its own seed.
    pub fn generate_in(family: Family, input_seed: u64) -> Input {
        let g = &mut Gen::new(input_seed);
        match family {
            Family::Mqtt => Input::Mqtt(mqtt::generate(g)),
            Family::Rpc => Input::Rpc(rpc::generate(g)),
            Family::Args => Input::Args(args::generate(g)),
            Family::Routing => Input::Routing(routing::generate(g)),
        }
    }

    /// Its family.
    pub fn family(&self) -> Family {
        match self {
            Input::Mqtt(_) => Family::Mqtt,
            Input::Rpc(_) => Family::Rpc,
            Input::Args(_) => Family::Args,
            Input::Routing(_) => Family::Routing,
        }
    }

    /// Feeds it to the core and judges the outcome (may panic: see [`check_caught`]).
    pub fn check(&self) -> Outcome {
        match self {
            Input::Mqtt(c) => mqtt::check(c),
            Input::Rpc(c) => rpc::check(c),
            Input::Args(c) => args::check(c),
            Input::Routing(c) => routing::check(c),
        }
    }

    /// The input as text to paste into a unit test.
    pub fn describe(&self) -> String {
        match self {
            Input::Mqtt(c) => mqtt::describe(c),
            Input::Rpc(c) => rpc::describe(c),
            Input::Args(c) => args::describe(c),
            Input::Routing(c) => routing::describe(c),
        }
    }

    fn smaller(&self) -> Vec<Input> {
        match self {
            Input::Mqtt(c) => mqtt::smaller(c).into_iter().map(Input::Mqtt).collect(),
            Input::Rpc(c) => rpc::smaller(c).into_iter().map(Input::Rpc).collect(),
            Input::Args(c) => args::smaller(c).into_iter().map(Input::Args).collect(),
            Input::Routing(_) => Vec::new(),
        }
    }
}

/// A panic or an unclear outcome.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The input's index in the run.
    pub index: u64,
    /// Its own seed (`--family F --input-seed S` runs it alone).
    pub input_seed: u64,
    /// Its family.
    pub family: Family,
    /// `panic: ...` or `unclear: ...`.
    pub what: String,
    /// The smallest input found that still fails the same way.
    pub reproducer: String,
}

/// Counts of one family.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Inputs fed.
    pub inputs: u64,
    /// Accepted as well-formed.
    pub accepted: u64,
    /// Refused with a clear error.
    pub errors: u64,
    /// Ignored where the spec says so.
    pub ignored: u64,
    /// Unclear outcomes.
    pub unclear: u64,
    /// Panics.
    pub panics: u64,
    /// Time spent feeding and judging.
    pub busy: Duration,
    /// Outcomes by kind (`error: -32700`, `ignored: a notification`, ...).
    pub kinds: BTreeMap<String, u64>,
}

impl Tally {
    /// Inputs per second of one core (busy time summed over threads).
    pub fn rate(&self) -> f64 {
        self.inputs as f64 / self.busy.as_secs_f64().max(1e-9)
    }
}

/// The result of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The run's seed.
    pub seed: u64,
    /// Per family.
    pub families: BTreeMap<Family, Tally>,
    /// The first failures (at most [`MAX_FAILURES`]).
    pub failures: Vec<Failure>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// At most this many failures are kept (each is shrunk, which costs time).
pub const MAX_FAILURES: usize = 8;

impl Report {
    /// Panics plus unclear outcomes over every family.
    pub fn bad(&self) -> u64 {
        self.families.values().map(|t| t.panics + t.unclear).sum()
    }

    /// Inputs over every family.
    pub fn inputs(&self) -> u64 {
        self.families.values().map(|t| t.inputs).sum()
    }

    /// The final table, in Markdown.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| family | inputs | accepted | clear errors | ignored per spec | unclear | panics | inputs/s (one core) |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let mut total = Tally::default();
        for (f, t) in &self.families {
            s.push_str(&row(f.name(), t));
            total.inputs += t.inputs;
            total.accepted += t.accepted;
            total.errors += t.errors;
            total.ignored += t.ignored;
            total.unclear += t.unclear;
            total.panics += t.panics;
            total.busy += t.busy;
        }
        s.push_str(&row("**all**", &total));
        s
    }

    /// Outcomes by kind, per family.
    pub fn kinds(&self) -> String {
        let mut s = String::new();
        for (f, t) in &self.families {
            s.push_str(&format!("{}:\n", f.name()));
            for (k, n) in &t.kinds {
                s.push_str(&format!("  {n:>9}  {k}\n"));
            }
        }
        s
    }
}

fn row(name: &str, t: &Tally) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {:.0} |\n",
        t.inputs,
        t.accepted,
        t.errors,
        t.ignored,
        t.unclear,
        t.panics,
        t.rate()
    )
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` with panics caught and their messages kept (not printed) instead.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
    }));
    let out = f();
    std::panic::set_hook(previous);
    out
}

/// Checks one input; `Err` is the panic's message. Call inside [`quietly`] or get the default
/// panic output too.
pub fn check_caught(input: &Input) -> Result<Outcome, String> {
    caught(|| input.check())
}

/// Runs `f`; `Err` is its panic's message (kept by the hook [`quietly`] sets).
fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Whether `r` is a failure.
fn failure_text(r: &Result<Outcome, String>) -> Option<String> {
    match r {
        Err(p) => Some(format!("panic: {p}")),
        Ok(Outcome::Unclear(u)) => Some(format!("unclear: {u}")),
        Ok(_) => None,
    }
}

/// The smallest input found that still fails (panic stays panic, unclear stays unclear).
fn shrink(input: Input, panicked: bool) -> Input {
    let mut best = input;
    let mut budget = 400;
    'outer: while budget > 0 {
        for cand in best.smaller() {
            budget -= 1;
            let r = check_caught(&cand);
            if r.is_err() == panicked && failure_text(&r).is_some() {
                best = cand;
                continue 'outer;
            }
            if budget == 0 {
                break 'outer;
            }
        }
        break;
    }
    best
}

/// Runs `count` inputs from `seed` (families in turn), calling `progress` about every two
/// seconds.
pub fn run(count: u64, seed: u64, mut progress: impl FnMut(u64, &Report)) -> Report {
    run_where(count, seed, |_| true, &mut progress)
}

/// Like [`run`], for the families `keep` accepts, on every core: input `i` goes to thread
/// `i % threads`, so the inputs, the counts and the failures kept do not depend on how many
/// threads there are.
pub fn run_where(
    count: u64,
    seed: u64,
    keep: impl Fn(Family) -> bool + Sync,
    progress: &mut dyn FnMut(u64, &Report),
) -> Report {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16) as u64;
    quietly(|| {
        let start = Instant::now();
        let parts: Vec<Report> = std::thread::scope(|scope| {
            let keep = &keep;
            let workers: Vec<_> = (1..threads)
                .map(|t| {
                    scope.spawn(move || run_part(count, seed, t, threads, keep, &mut |_, _| {}))
                })
                .collect();
            // Thread 0 reports progress for all (its share times the number of threads).
            let first = run_part(count, seed, 0, threads, keep, &mut |done, r| {
                progress((done * threads).min(count), r)
            });
            let mut parts = vec![first];
            for w in workers {
                // A worker's panics are caught per input; a join error would be the harness's own.
                parts.push(w.join().unwrap_or_default());
            }
            parts
        });
        let mut report = Report {
            seed,
            ..Report::default()
        };
        for part in parts {
            for (f, t) in part.families {
                let total = report.families.entry(f).or_default();
                total.inputs += t.inputs;
                total.accepted += t.accepted;
                total.errors += t.errors;
                total.ignored += t.ignored;
                total.unclear += t.unclear;
                total.panics += t.panics;
                total.busy += t.busy;
                for (k, n) in t.kinds {
                    *total.kinds.entry(k).or_default() += n;
                }
            }
            report.failures.extend(part.failures);
        }
        report.failures.sort_by_key(|f| f.index);
        report.failures.truncate(MAX_FAILURES);
        report.elapsed = start.elapsed();
        report
    })
}

/// The inputs `index % threads == part` of a run.
fn run_part(
    count: u64,
    seed: u64,
    part: u64,
    threads: u64,
    keep: &(impl Fn(Family) -> bool + Sync),
    progress: &mut dyn FnMut(u64, &Report),
) -> Report {
    let start = Instant::now();
    let mut report = Report {
        seed,
        ..Report::default()
    };
    let mut last_progress = Instant::now();
    for index in (part..count).step_by(threads as usize) {
        let family = Family::ALL[(index % 4) as usize];
        if !keep(family) {
            continue;
        }
        let input = Input::generate(seed, index);
        let t0 = Instant::now();
        let result = check_caught(&input);
        let tally = report.families.entry(family).or_default();
        tally.busy += t0.elapsed();
        tally.inputs += 1;
        let kind = match &result {
            Err(_) => {
                tally.panics += 1;
                "panic".to_string()
            }
            Ok(Outcome::Accepted(k)) => {
                tally.accepted += 1;
                format!("accepted: {k}")
            }
            Ok(Outcome::Error { kind, .. }) => {
                tally.errors += 1;
                format!("error: {kind}")
            }
            Ok(Outcome::Ignored(k)) => {
                tally.ignored += 1;
                format!("ignored: {k}")
            }
            Ok(Outcome::Unclear(_)) => {
                tally.unclear += 1;
                "unclear".to_string()
            }
        };
        *tally.kinds.entry(kind).or_default() += 1;
        if let Some(what) = failure_text(&result) {
            if report.failures.len() < MAX_FAILURES {
                let small = shrink(input.clone(), result.is_err());
                report.failures.push(Failure {
                    index,
                    input_seed: input_seed(seed, index),
                    family,
                    what,
                    reproducer: small.describe(),
                });
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            report.elapsed = start.elapsed();
            progress(index + 1, &report);
        }
    }
    report
}

/// Checks the one input `input_seed` of `family` (a failure's reproducer), panics caught.
pub fn run_one(family: Family, input_seed: u64) -> (Input, Result<Outcome, String>) {
    let input = Input::generate_in(family, input_seed);
    let r = quietly(|| check_caught(&input));
    (input, r)
}

/// Whether an error message says something a person can act on.
fn clear_message(m: &str) -> bool {
    !m.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_with_its_message_and_counted_as_a_failure() {
        let r: Result<(), String> = quietly(|| caught(|| panic!("boom {}", 7)));
        let msg = r.unwrap_err();
        assert!(msg.starts_with("boom 7 at "), "{msg}");
        assert!(failure_text(&Err(msg)).is_some_and(|f| f.starts_with("panic: boom 7")));
        assert!(failure_text(&Ok(Outcome::Unclear("x".into()))).is_some());
        assert!(failure_text(&Ok(Outcome::Ignored("a notification"))).is_none());
    }

    #[test]
    fn the_same_seed_gives_the_same_run_and_one_input_reruns_alone() {
        let a = run(200, 9, |_, _| {});
        let b = run(200, 9, |_, _| {});
        for f in Family::ALL {
            assert_eq!(a.families[&f].kinds, b.families[&f].kinds, "{}", f.name());
            assert_eq!(a.families[&f].inputs, 50);
        }
        let c = run(200, 10, |_, _| {});
        assert_ne!(
            a.families[&Family::Rpc].kinds,
            c.families[&Family::Rpc].kinds,
            "another seed, other inputs"
        );
        let (input, r) = run_one(Family::Rpc, input_seed(9, 5));
        assert_eq!(input.family(), Family::Rpc);
        assert_eq!(
            input.describe(),
            Input::generate(9, 5).describe(),
            "input 5 of seed 9 regenerates from its own seed"
        );
        assert!(r.is_ok());
    }

    #[test]
    fn the_table_counts_every_family_and_the_total() {
        let r = run(40, 1, |_, _| {});
        let table = r.table();
        for f in Family::ALL {
            assert!(table.contains(&format!("| {} | 10 |", f.name())), "{table}");
        }
        assert!(table.contains("| **all** | 40 |"), "{table}");
    }
}
