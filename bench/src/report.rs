//! Results: one [`Record`] per measurement, the JSON-lines file and the table on stdout.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The peers, in the order of the table's columns.
pub const PEERS: [&str; 4] = ["numpy", "numexpr", "numba-vectorize", "numba-njit"];

/// One measurement: the JSON-lines schema shared with `peers.py`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub kernel: String,
    pub dtype: String,
    pub n: usize,
    /// `out`, `alloc`, or for latencies `first-call`, `compile`, `overhead`, `overhead-dyn`.
    pub mode: String,
    /// `kiln`, `stream` or a peer.
    pub system: String,
    pub median_s: f64,
    pub gbps: f64,
}

impl Record {
    /// A record whose GB/s is computed from `bytes_per_elem` (0 for latencies).
    pub fn new(
        kernel: &str,
        dtype: &str,
        n: usize,
        mode: &str,
        system: &str,
        median_s: f64,
        bytes_per_elem: usize,
    ) -> Record {
        Record {
            kernel: kernel.into(),
            dtype: dtype.into(),
            n,
            mode: mode.into(),
            system: system.into(),
            median_s,
            gbps: gbps(bytes_per_elem, n, median_s),
        }
    }

    /// One JSON object on one line, keys in the schema's order.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"kernel\": {}, \"dtype\": {}, \"n\": {}, \"mode\": {}, \"system\": {}, \"median_s\": {}, \"gbps\": {}}}",
            json_str(&self.kernel),
            json_str(&self.dtype),
            self.n,
            json_str(&self.mode),
            json_str(&self.system),
            json_num(self.median_s),
            json_num(self.gbps),
        )
    }

    /// Elements per second, in millions.
    pub fn melems(&self) -> f64 {
        self.n as f64 / self.median_s / 1e6
    }
}

/// `bytes_per_elem * n / seconds / 1e9`, as `peers.py` computes it.
pub fn gbps(bytes_per_elem: usize, n: usize, seconds: f64) -> f64 {
    (bytes_per_elem * n) as f64 / seconds / 1e9
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (Rust's shortest round-trip form), or `null` if not finite.
fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// Where records go: kept for the table and, with `--json`, appended to the file as they
/// come, so that an interrupted run keeps what it measured.
pub struct Sink {
    pub records: Vec<Record>,
    file: Option<(PathBuf, BufWriter<File>)>,
}

impl Sink {
    /// A sink writing to `json` (created or truncated now, so a bad path fails early).
    pub fn new(json: Option<&Path>) -> Result<Sink, String> {
        let file = match json {
            Some(p) => {
                let f =
                    File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
                Some((p.to_path_buf(), BufWriter::new(f)))
            }
            None => None,
        };
        Ok(Sink {
            records: Vec::new(),
            file,
        })
    }

    pub fn push(&mut self, r: Record) -> Result<(), String> {
        if let Some((path, f)) = &mut self.file {
            writeln!(f, "{}", r.to_json())
                .and_then(|()| f.flush())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        self.records.push(r);
        Ok(())
    }

    /// The record of `system` for `(kernel, dtype, n, mode)`.
    pub fn find(
        &self,
        system: &str,
        kernel: &str,
        dtype: &str,
        n: usize,
        mode: &str,
    ) -> Option<&Record> {
        self.records.iter().find(|r| {
            r.system == system
                && r.kernel == kernel
                && r.dtype == dtype
                && r.n == n
                && r.mode == mode
        })
    }
}

/// `n` as `1e6` when it is a power of ten, else in full.
pub fn fmt_n(n: usize) -> String {
    let mut k = 0;
    let mut m = n;
    while m >= 10 && m % 10 == 0 {
        m /= 10;
        k += 1;
    }
    if m == 1 && k > 0 {
        format!("1e{k}")
    } else {
        n.to_string()
    }
}

/// Three significant digits, no exponent.
fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A duration in seconds with a readable unit: `2.31 µs`, `45.6 ms`, `1.20 s`.
pub fn fmt_time(s: f64) -> String {
    if !s.is_finite() {
        return "-".into();
    }
    if s < 1e-3 {
        format!("{} µs", sig3(s * 1e6))
    } else if s < 1.0 {
        format!("{} ms", sig3(s * 1e3))
    } else {
        format!("{} s", sig3(s))
    }
}

/// A rate with three significant digits.
pub fn fmt_rate(v: f64) -> String {
    if v.is_finite() {
        sig3(v)
    } else {
        "-".into()
    }
}

/// Right-aligned columns (the first `left` columns left-aligned), one line per row, the
/// header underlined; no newline at the end.
pub fn render_table(header: &[String], rows: &[Vec<String>], left: usize) -> String {
    let cols = header.len();
    let mut width = vec![0; cols];
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String]| {
        let cells: Vec<String> = row
            .iter()
            .zip(&width)
            .enumerate()
            .map(|(i, (cell, &w))| {
                if i < left {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        cells.join("  ").trim_end().to_string()
    };
    let total: usize = width.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
    let mut lines = vec![line(header), "-".repeat(total)];
    lines.extend(rows.iter().map(|r| line(r)));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_the_peers_schema() {
        let r = Record::new("saxpy", "f64", 1000, "out", "kiln", 2.5e-6, 24);
        assert_eq!(
            r.to_json(),
            "{\"kernel\": \"saxpy\", \"dtype\": \"f64\", \"n\": 1000, \"mode\": \"out\", \
             \"system\": \"kiln\", \"median_s\": 0.0000025, \"gbps\": 9.6}"
        );
        let mut r = r;
        r.gbps = f64::INFINITY;
        assert!(r.to_json().ends_with("\"gbps\": null}"));
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_n(100_000_000), "1e8");
        assert_eq!(fmt_n(1000), "1e3");
        assert_eq!(fmt_n(1500), "1500");
        assert_eq!(fmt_n(1), "1");
        assert_eq!(fmt_time(2.345e-6), "2.35 µs");
        assert_eq!(fmt_time(0.0456), "45.6 ms");
        assert_eq!(fmt_time(1.2), "1.20 s");
    }

    #[test]
    fn tables_align() {
        let t = render_table(
            &["k".into(), "time".into()],
            &[vec!["saxpy".into(), "1 µs".into()]],
            1,
        );
        assert_eq!(t, "k      time\n-----------\nsaxpy  1 µs");
    }
}
