//! The REPL's terminal side: rustyline with history kept across sessions, inputs that
//! continue while a brace or parenthesis is open, tab completion of items, variables,
//! builtins and commands, and Ctrl-C that interrupts a running kernel.
#![allow(clippy::print_stdout, clippy::print_stderr)] // The REPL talks to the terminal.

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Config, Context, Editor, Helper};

use super::{Control, Session, COMMANDS};
use crate::Error;

/// The prompt.
pub const PROMPT: &str = "kiln> ";

/// Completion and multi-line input for the editor.
struct KilnHelper {
    /// Items, variables and builtins, refreshed before each input.
    names: Vec<String>,
}

impl Completer for KilnHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let pool: Vec<&str> = if word.starts_with(':') {
            COMMANDS.iter().map(|(c, _, _)| *c).collect()
        } else {
            self.names.iter().map(String::as_str).collect()
        };
        let mut found: Vec<Pair> = pool
            .into_iter()
            .filter(|n| n.starts_with(word))
            .map(|n| Pair {
                display: n.to_string(),
                replacement: n.to_string(),
            })
            .collect();
        found.sort_by(|a, b| a.display.cmp(&b.display));
        found.dedup_by(|a, b| a.display == b.display);
        Ok((start, found))
    }
}

impl Hinter for KilnHelper {
    type Hint = String;
}

impl Highlighter for KilnHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for KilnHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if open_brackets(ctx.input()) > 0 {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Helper for KilnHelper {}

/// Open `{ ( [` minus closed ones, outside comments and string literals: an input with
/// more opened than closed continues on the next line.
pub fn open_brackets(src: &str) -> i64 {
    let mut depth = 0i64;
    let mut chars = src.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Where the history is kept: `KILN_HISTORY`, else `$XDG_STATE_HOME/kiln/history`, else
/// `~/.local/state/kiln/history`.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KILN_HISTORY") {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("kiln").join("history"))
}

/// Names for completion: the session's items and variables, the builtins.
fn names(session: &Session) -> Vec<String> {
    let mut names: Vec<String> = session.item_names().iter().map(|s| s.to_string()).collect();
    names.extend(session.vars().iter().map(|v| v.name.clone()));
    names.extend(
        kiln_front::builtins::Builtin::names()
            .iter()
            .map(|s| s.to_string()),
    );
    names.extend(
        kiln_front::check::ARRAY_BUILTINS
            .iter()
            .map(|s| s.to_string()),
    );
    names.push("print".into());
    names
}

/// Runs the REPL on the terminal until `:quit` or Ctrl-D.
pub fn run(session: &mut Session) -> Result<(), Error> {
    let usage = |e: ReadlineError| Error::Usage(format!("the line editor failed: {e}"));
    let config = Config::builder().auto_add_history(false).build();
    let mut rl: Editor<KilnHelper, DefaultHistory> = Editor::with_config(config).map_err(usage)?;
    rl.set_helper(Some(KilnHelper { names: Vec::new() }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    crate::interrupt::install_handler();
    println!(
        "kiln {} — a JIT compiler for array kernels. :help lists the commands; Ctrl-D leaves.",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        if let Some(h) = rl.helper_mut() {
            h.names = names(session);
        }
        let line = match rl.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(usage(e)),
        };
        if !line.trim().is_empty() {
            let _ = rl.add_history_entry(line.as_str());
        }
        crate::interrupt::clear();
        // A panic is a Kiln bug, but it must not take the session and its variables with
        // it: the input fails (the panic hook has printed where), and the session goes on.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_progress(|| {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                let r = session.handle(&line, &mut out);
                let _ = out.flush();
                r
            })
        }));
        match result {
            Ok(Ok(Control::Continue)) => {}
            Ok(Ok(Control::Quit)) => break,
            Ok(Err(e)) => report(&e),
            Err(_) => eprintln!(
                "internal error: Kiln panicked on this input (a bug; please report it). The session goes on."
            ),
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // Into a temporary file beside the history, renamed over it once written and synced:
        // a full disk or a crash keeps the old history. rustyline writes nothing (and the
        // temporary file is dropped) when there is no new entry.
        let _ = crate::script::npy::replace_file_at(h, |tmp| {
            rl.save_history(tmp.path()).map_err(|e| match e {
                ReadlineError::Io(e) => e,
                other => std::io::Error::other(other.to_string()),
            })?;
            Ok(tmp.as_file().metadata()?.len() > 0)
        });
    }
    Ok(())
}

/// Runs `f`; if it takes more than a second, shows a progress bar on stderr meanwhile: the
/// elements done of the array operation under way (`kiln_runtime::progress`), or a spinner
/// for work of unknown size.
fn with_progress<T>(f: impl FnOnce() -> T) -> T {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let done = Arc::new(AtomicBool::new(false));
    kiln_runtime::progress::begin(0);
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut bar: Option<indicatif::ProgressBar> = None;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if t0.elapsed() < Duration::from_secs(1) || done.load(Ordering::Relaxed) {
                    continue;
                }
                let (n, total) = kiln_runtime::progress::snapshot();
                let b = bar.get_or_insert_with(|| {
                    let b = indicatif::ProgressBar::new_spinner();
                    b.set_message("running (Ctrl-C interrupts)");
                    b
                });
                if total > 0 {
                    if b.length() != Some(total as u64) {
                        b.set_style(
                            indicatif::ProgressStyle::with_template(
                                "{bar:40} {percent:>3}% {human_pos}/{human_len} elements, {eta} left (Ctrl-C interrupts)",
                            )
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                        );
                        b.set_length(total as u64);
                    }
                    b.set_position(n as u64);
                } else {
                    b.tick();
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        })
    };
    // Stops the watcher however `f` ends, a panic included.
    struct Stop(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
            if let Some(w) = self.1.take() {
                let _ = w.join();
            }
        }
    }
    let _stop = Stop(done, Some(watcher));
    f()
}

/// Prints an error as the command line does: diagnostics with colour on a terminal.
fn report(e: &Error) {
    use std::io::IsTerminal;
    if let Error::Compile(d) = e {
        let choice = if std::io::stderr().is_terminal() {
            codespan_reporting::term::termcolor::ColorChoice::Auto
        } else {
            codespan_reporting::term::termcolor::ColorChoice::Never
        };
        let mut w = codespan_reporting::term::termcolor::StandardStream::stderr(choice);
        if d.emit_styled(&mut w).is_ok() {
            return;
        }
    }
    eprintln!("{e}");
}
