//! The Python peers: `bench/peers/setup.sh` provides the interpreter, `peers.py` runs one
//! system per process and prints one JSON object per line (see `bench/peers/README.md`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::report::{fmt_n, fmt_time, Record};

/// `bench/peers`, found from this crate's manifest directory.
fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// Extra environment for a peer's process. Parallel `@vectorize` ufuncs pay an indirect
/// call per element under Numba's default OpenMP layer (see the peers README), so that
/// peer gets its best case, the `workqueue` layer.
pub fn peer_env(system: &str) -> &'static [(&'static str, &'static str)] {
    if system == "numba-vectorize" {
        &[("NUMBA_THREADING_LAYER", "workqueue")]
    } else {
        &[]
    }
}

/// Runs `setup.sh` (its stderr passes through) and returns the python it prints last.
pub fn setup() -> Result<PathBuf, String> {
    let script = peers_dir().join("setup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run `bash {}`: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", script.display(), out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let py = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .ok_or_else(|| format!("{} printed no python path", script.display()))?;
    let py = PathBuf::from(py);
    if !py.exists() {
        return Err(format!(
            "{} printed {}, which does not exist",
            script.display(),
            py.display()
        ));
    }
    Ok(py)
}

/// The parameters shared by every peer run.
pub struct PeerRun<'a> {
    pub python: &'a Path,
    pub sizes: &'a [usize],
    pub repeats: usize,
    pub threads: usize,
}

impl PeerRun<'_> {
    fn command(&self, system: &str) -> Command {
        let mut cmd = Command::new(self.python);
        cmd.arg(peers_dir().join("peers.py"))
            .args(["--system", system])
            .arg("--threads")
            .arg(self.threads.to_string())
            .envs(peer_env(system).iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd
    }

    /// Runs every kernel of `system` in one process; `on_record` gets each record as it
    /// arrives. A process that fails part-way has delivered the records it printed, and
    /// its failure is the error.
    pub fn run_system(
        &self,
        system: &str,
        mut on_record: impl FnMut(Record),
    ) -> Result<(), String> {
        let sizes: Vec<String> = self.sizes.iter().map(usize::to_string).collect();
        let mut cmd = self.command(system);
        cmd.arg("--sizes")
            .arg(sizes.join(","))
            .arg("--repeats")
            .arg(self.repeats.to_string());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start peers.py for {system}: {e}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| format!("peers.py for {system}: no stdout"))?;
        let mut result = Ok(());
        for line in BufReader::new(stdout).lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    result = Err(format!("reading peers.py for {system}: {e}"));
                    break;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match parse_record(&line) {
                Ok(r) => {
                    eprintln!(
                        "{} {} {} n={} {}: {} ({:.2} GB/s)",
                        r.system,
                        r.kernel,
                        r.dtype,
                        fmt_n(r.n),
                        r.mode,
                        fmt_time(r.median_s),
                        r.gbps
                    );
                    on_record(r);
                }
                Err(e) => eprintln!("kiln-bench: ignoring a line from peers.py ({e}): {line}"),
            }
        }
        let status = child
            .wait()
            .map_err(|e| format!("peers.py for {system}: {e}"))?;
        if !status.success() && result.is_ok() {
            result = Err(format!("peers.py for {system} failed ({status})"));
        }
        result
    }

    /// The time of Numba's first blackscholes call in a fresh process (`--first-call`).
    pub fn first_call(&self, system: &str) -> Result<Record, String> {
        let mut cmd = self.command(system);
        cmd.arg("--first-call");
        let out = cmd
            .output()
            .map_err(|e| format!("cannot start peers.py --first-call for {system}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "peers.py --first-call for {system} failed ({})",
                out.status
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| !l.trim().is_empty())
            .ok_or_else(|| format!("peers.py --first-call for {system} printed nothing"))?;
        parse_record(line)
    }
}

/// A JSON value of a flat object: all that `peers.py` prints.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Num(f64),
}

/// Parses one line of `peers.py` output into a [`Record`].
pub fn parse_record(line: &str) -> Result<Record, String> {
    let obj = parse_flat_object(line)?;
    let text = |k: &str| match obj.get(k) {
        Some(Value::Str(s)) => Ok(s.clone()),
        _ => Err(format!("no string `{k}`")),
    };
    let num = |k: &str| match obj.get(k) {
        Some(Value::Num(v)) => Ok(*v),
        _ => Err(format!("no number `{k}`")),
    };
    let n = num("n")?;
    if !(n >= 0.0 && n.fract() == 0.0) {
        return Err(format!("`n` is {n}, not a count"));
    }
    Ok(Record {
        kernel: text("kernel")?,
        dtype: text("dtype")?,
        n: n as usize,
        mode: text("mode")?,
        system: text("system")?,
        median_s: num("median_s")?,
        gbps: num("gbps")?,
    })
}

/// A JSON object whose values are strings and numbers (also Python's `Infinity`/`NaN`).
fn parse_flat_object(s: &str) -> Result<HashMap<String, Value>, String> {
    let mut p = Parser {
        chars: s.trim().chars().peekable(),
    };
    let mut obj = HashMap::new();
    p.expect('{')?;
    p.ws();
    if p.eat('}') {
        return p.end(obj);
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.expect(':')?;
        p.ws();
        let value = if p.chars.peek() == Some(&'"') {
            Value::Str(p.string()?)
        } else {
            Value::Num(p.number()?)
        };
        obj.insert(key, value);
        p.ws();
        if p.eat(',') {
            continue;
        }
        p.expect('}')?;
        return p.end(obj);
    }
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.chars.next();
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.chars.peek() == Some(&c) {
            self.chars.next();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{c}`"))
        }
    }

    fn end<T>(&mut self, v: T) -> Result<T, String> {
        self.ws();
        match self.chars.next() {
            None => Ok(v),
            Some(c) => Err(format!("unexpected `{c}` after the object")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            match self.chars.next() {
                None => return Err("unterminated string".into()),
                Some('"') => return Ok(out),
                Some('\\') => match self.chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('u') => {
                        let hex: String = (0..4).filter_map(|_| self.chars.next()).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .unwrap_or('\u{fffd}');
                        out.push(c);
                    }
                    Some(c) => out.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn number(&mut self) -> Result<f64, String> {
        let mut tok = String::new();
        while let Some(&c) = self.chars.peek() {
            if c == ',' || c == '}' || c.is_whitespace() {
                break;
            }
            tok.push(c);
            self.chars.next();
        }
        // Rust parses `Infinity`, `-Infinity` and `NaN` as Python's json writes them.
        tok.parse::<f64>()
            .map_err(|_| format!("`{tok}` is not a number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_peers_lines() {
        let line = r#"{"kernel": "saxpy", "dtype": "f64", "n": 1000000, "mode": "out", "system": "numba-njit", "median_s": 0.000506, "gbps": 47.4}"#;
        let r = parse_record(line).expect("parses");
        let expected = Record {
            gbps: 47.4,
            ..Record::new("saxpy", "f64", 1_000_000, "out", "numba-njit", 0.000506, 0)
        };
        assert_eq!(r, expected);
        // It round-trips through our own writer.
        assert_eq!(parse_record(&r.to_json()).expect("round trip"), r);
        let r = parse_record(
            r#"{"kernel": "a\"b", "dtype": "f64", "n": 5, "mode": "first-call", "system": "s", "median_s": 1.5e-3, "gbps": Infinity}"#,
        )
        .expect("escapes and Infinity");
        assert_eq!(r.kernel, "a\"b");
        assert_eq!(r.gbps, f64::INFINITY);
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(parse_record("").is_err());
        assert!(parse_record("{").is_err());
        assert!(parse_record(r#"{"kernel": "saxpy"}"#).is_err());
        assert!(parse_record(r#"{"kernel": "saxpy", "n": x}"#).is_err());
        assert!(parse_record(r#"{"n": 1} trailing"#).is_err());
    }
}
