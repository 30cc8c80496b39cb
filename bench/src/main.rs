//! `kiln-bench`: Kiln's array kernels against NumPy, NumExpr, Numba and memory bandwidth.
//!
//! ```text
//! cargo run --release -p kiln-bench -- [--quick] [--peers] [--json FILE] [--threads N] [--repeats R]
//! ```
//!
//! # What is measured
//!
//! - **Throughput.** Five kernels written in Kiln (`bench/kernels.kl`) with exactly the
//!   formulas, constants and inputs of `bench/peers/README.md`: `saxpy` (f32 and f64,
//!   `a*x + y`), `poly4` (Horner), `blackscholes` (with `erfc`; k, t, r, v broadcast as
//!   scalars), `transcend` (`exp(-x*x)*sin(x) + log1p(abs(x))`) and `sumsq` (`sum(x*x)`, a
//!   fused map-reduce of `sq` with `reduce add`). Inputs are NumPy's
//!   `linspace(a, b, n, dtype)` (points computed in f64, then rounded). Sizes n = 1e3, 1e5,
//!   1e6, 1e7, 1e8 (`--quick`: up to 1e6). Two modes: `out` writes into a preallocated
//!   output (`TypedUfunc::call_into`; sumsq's `Reduction::map_reduce` has only this mode)
//!   and `alloc` returns a fresh output from each call (`TypedUfunc::call`). Each
//!   measurement is one untimed warm-up call, then `--repeats` calls (default 7, 3 with
//!   `--quick`) timed one by one; the median is reported with Melem/s and GB/s
//!   (`bytes_per_elem * n / median / 1e9`, bytes per element as in the peers README:
//!   3 × itemsize for saxpy, 16 for poly4/blackscholes/transcend, 8 for sumsq). Inputs
//!   and outputs are freed after each size.
//! - **Correctness.** At the first size, every kernel and mode is compared with a plain
//!   Rust f64 evaluation of the same formula before it is timed; a normwise relative error
//!   (`max|res - ref| / max|ref|`) of 1e-12 (f64) or 1e-6 (f32) or more aborts the run.
//! - **Memory bandwidth.** A STREAM-like triad `a[i] = b[i] + s*c[i]` over f64 in plain
//!   Rust with rayon (parallel over chunks, the same thread count) at the largest n of the
//!   run: system `stream`, kernel `triad`, 24 bytes per element.
//! - **Per-call overhead.** The median of 2001 calls of saxpy f64 at n = 1e3 (and at n = 1,
//!   the fixed cost alone) into a preallocated output, through the typed handle (mode
//!   `overhead`) and the dtype-dynamic `Ufunc::call_into` (mode `overhead-dyn`).
//! - **Compile latency** (source → callable native code) of the blackscholes module (the
//!   self-contained `BEGIN/END blackscholes` section of `kernels.kl`): the median of 50
//!   iterations, each with a fresh back end (so nothing compiled is cached) and a fresh
//!   `Jit`, of `Jit::compile` (mode `compile`: parse, check, lower, optimise) and of
//!   `Jit::compile` plus the first call at n = 1e3 into a preallocated output, in which
//!   Cranelift compiles the loop (mode `first-call`). Creating the back end (host ISA
//!   detection) is timed apart and not included.
//! - **Peers** (`--peers`): `bench/peers/setup.sh` provides the Python (creating
//!   `bench/.venv` on first use; if that fails, the run goes on with Kiln alone), then
//!   `peers.py` runs once per system (`numpy`, `numexpr`, `numba-vectorize`,
//!   `numba-njit`), each in its own process, with the same sizes, repeats and threads.
//!   `numba-vectorize` runs with `NUMBA_THREADING_LAYER=workqueue`: under Numba's default
//!   OpenMP layer its parallel ufuncs pay an indirect call per element (see the peers
//!   README). Numba's first call of blackscholes at n = 1e3, compilation included
//!   (`--first-call`), is the median of 5 fresh processes per Numba system (mode
//!   `first-call`, compared with Kiln's `first-call`).
//!
//! # Output
//!
//! Progress goes to stderr as the run proceeds (a full run takes many minutes); the
//! table goes to stdout at the end: per kernel, dtype, n and mode, Kiln's median, Melem/s
//! and GB/s and, with `--peers`, each peer's median with `peer time / Kiln time` (> 1:
//! Kiln is faster), then the triad, the per-call overhead and the compile latency.
//!
//! `--json FILE` writes one object per line, as the run goes, in `peers.py`'s schema:
//! `{"kernel", "dtype", "n", "mode", "system", "median_s", "gbps"}`, `system` being
//! `kiln`, `stream` or a peer, and `mode` `out` or `alloc` for throughput. Latency rows:
//! `blackscholes f64 n=1000` with mode `compile` (kiln) and `first-call` (kiln,
//! numba-njit, numba-vectorize; the median over processes for Numba), and `saxpy f64
//! n=1000` with mode `overhead` and `overhead-dyn` (kiln); `gbps` is 0 for `compile` and
//! `first-call`. The peers' own rows are included as they printed them.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A command: table out, progress err.

mod cases;
#[cfg(feature = "gpu")]
mod gpu;
mod measure;
mod peers;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use cases::KERNELS;
use measure::{compile_latency, median, triad, KilnBench};
use report::{fmt_n, fmt_rate, fmt_time, render_table, Record, Sink, PEERS};

const SIZES: [usize; 5] = [1_000, 100_000, 1_000_000, 10_000_000, 100_000_000];
const QUICK_SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const REPEATS: usize = 7;
const QUICK_REPEATS: usize = 3;
/// Fresh compiles for Kiln's compile latency.
const COMPILES: usize = 50;
/// Fresh processes for each Numba first-call time.
const FIRST_CALL_PROCESSES: usize = 5;
/// Calls timed for the per-call overhead, and the size.
const OVERHEAD_CALLS: usize = 2001;
const OVERHEAD_N: usize = 1_000;

#[derive(Parser)]
#[command(
    name = "kiln-bench",
    about = "Kiln's array kernels against NumPy, NumExpr, Numba and a STREAM triad",
    long_about = "Kiln's array kernels against NumPy, NumExpr, Numba and a STREAM triad.\n\n\
                  Progress goes to stderr; the table to stdout at the end. \
                  See bench/src/main.rs for what is measured and how."
)]
struct Cli {
    /// Sizes 1e3, 1e5 and 1e6 only, and 3 repeats unless --repeats is given.
    #[arg(long)]
    quick: bool,
    /// Also run the Python peers (NumPy, NumExpr, Numba) with bench/peers.
    #[arg(long)]
    peers: bool,
    /// Write every measurement as one JSON object per line to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Threads for Kiln, the triad and the peers [default: one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Timed runs of each measurement after one warm-up; the median is reported
    /// [default: 7, or 3 with --quick].
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..))]
    repeats: Option<u32>,
    /// The GPU benchmark instead (build with `--features gpu`): device arrays against a
    /// device-to-device copy and, with --peers, CuPy and Numba CUDA; see bench/src/gpu.rs.
    #[arg(long)]
    gpu: bool,
    /// Internal: one latency measurement of `--gpu` in a fresh process.
    #[arg(long, hide = true, value_name = "KERNEL")]
    gpu_latency_child: Option<String>,
}

/// The run's settings.
struct Config {
    sizes: Vec<usize>,
    repeats: usize,
    threads: usize,
    peers: bool,
}

/// What became of the peers.
enum PeersOutcome {
    NotAsked,
    /// Setup failed: the reason.
    Unavailable(String),
    /// Ran; the systems that failed, with why.
    Ran(Vec<String>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    if cli.gpu || cli.gpu_latency_child.is_some() {
        return run_gpu(cli);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cfg = Config {
        sizes: if cli.quick {
            QUICK_SIZES.to_vec()
        } else {
            SIZES.to_vec()
        },
        repeats: cli
            .repeats
            .map_or(if cli.quick { QUICK_REPEATS } else { REPEATS }, |r| {
                r as usize
            }),
        threads: cli.threads.map_or(cpus, usize::from),
        peers: cli.peers,
    };
    let sizes: Vec<String> = cfg.sizes.iter().map(|&n| fmt_n(n)).collect();
    eprintln!(
        "kiln-bench: {} threads on {cpus} CPUs, n = {}, median of {} runs after one warm-up",
        cfg.threads,
        sizes.join(", "),
        cfg.repeats
    );
    let mut sink = Sink::new(cli.json.as_deref())?;

    let bench = KilnBench::new(cfg.threads)?;
    for kernel in KERNELS {
        for &dtype in kernel.dtypes() {
            bench.run(kernel, dtype, &cfg.sizes, cfg.repeats, &mut sink)?;
        }
    }

    eprintln!(
        "kiln per-call overhead: saxpy f64 n={}, {OVERHEAD_CALLS} calls",
        fmt_n(OVERHEAD_N)
    );
    // At n = 1e3 (comparable with the peers' n = 1e3 rows) and at n = 1 (the fixed cost).
    for n in [OVERHEAD_N, 1] {
        let (typed, dynamic) = bench.overhead(n, OVERHEAD_CALLS)?;
        for (mode, t) in [("overhead", typed), ("overhead-dyn", dynamic)] {
            sink.push(Record::new("saxpy", "f64", n, mode, "kiln", t, 24))?;
        }
    }
    drop(bench);

    eprintln!("kiln compile latency: blackscholes module, {COMPILES} fresh compiles");
    let lat = compile_latency(cfg.threads, COMPILES)?;
    sink.push(Record::new(
        "blackscholes",
        "f64",
        1000,
        "compile",
        "kiln",
        lat.compile_s,
        0,
    ))?;
    sink.push(Record::new(
        "blackscholes",
        "f64",
        1000,
        "first-call",
        "kiln",
        lat.first_call_s,
        0,
    ))?;

    let n_max = cfg.sizes.iter().copied().max().unwrap_or(1);
    eprintln!("stream triad: n={}", fmt_n(n_max));
    let t = triad(n_max, cfg.threads, cfg.repeats)?;
    sink.push(Record::new("triad", "f64", n_max, "out", "stream", t, 24))?;
    eprintln!("stream triad f64 n={}: {}", fmt_n(n_max), fmt_time(t));

    let peers = if cfg.peers {
        run_peers(&cfg, &mut sink)?
    } else {
        PeersOutcome::NotAsked
    };

    print!("{}", report(&cfg, cpus, &sink, &lat, &peers));
    Ok(())
}

#[cfg(feature = "gpu")]
fn run_gpu(cli: &Cli) -> Result<(), String> {
    if let Some(kernel) = &cli.gpu_latency_child {
        return gpu::latency_child(kernel);
    }
    let sizes: &[usize] = if cli.quick {
        &gpu::QUICK_SIZES
    } else {
        &gpu::SIZES
    };
    let repeats = cli
        .repeats
        .map_or(if cli.quick { QUICK_REPEATS } else { REPEATS }, |r| {
            r as usize
        });
    let mut sink = Sink::new(cli.json.as_deref())?;
    print!("{}", gpu::run(sizes, repeats, cli.peers, &mut sink)?);
    Ok(())
}

#[cfg(not(feature = "gpu"))]
fn run_gpu(_: &Cli) -> Result<(), String> {
    Err("this kiln-bench was built without the GPU back end: \
         cargo run --release -p kiln-bench --features gpu -- --gpu"
        .into())
}

/// Runs every peer system, then the Numba first calls. Only a failure to write the JSON
/// file is an error; a peer that fails is reported and skipped.
fn run_peers(cfg: &Config, sink: &mut Sink) -> Result<PeersOutcome, String> {
    eprintln!("peers: running bench/peers/setup.sh");
    let python = match peers::setup() {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "kiln-bench: the Python peers are unavailable ({e}); is the network \
                 reachable to install numpy, numexpr, numba and scipy? Continuing with Kiln only."
            );
            return Ok(PeersOutcome::Unavailable(e));
        }
    };
    let run = peers::PeerRun {
        python: &python,
        sizes: &cfg.sizes,
        repeats: cfg.repeats,
        threads: cfg.threads,
    };
    let mut failed = Vec::new();
    for system in PEERS {
        eprintln!("peers: {system}{}", env_note(system));
        let mut write_error = None;
        let result = run.run_system(system, |r| {
            if let Err(e) = sink.push(r) {
                write_error.get_or_insert(e);
            }
        });
        if let Some(e) = write_error {
            return Err(e);
        }
        if let Err(e) = result {
            eprintln!("kiln-bench: {e}; continuing");
            failed.push(format!("{system}: {e}"));
        }
    }
    for system in ["numba-njit", "numba-vectorize"] {
        eprintln!(
            "peers: {system} first call, {FIRST_CALL_PROCESSES} fresh processes{}",
            env_note(system)
        );
        let mut times = Vec::new();
        for _ in 0..FIRST_CALL_PROCESSES {
            match run.first_call(system) {
                Ok(r) => {
                    eprintln!("{system} first call: {}", fmt_time(r.median_s));
                    times.push(r.median_s);
                }
                Err(e) => {
                    eprintln!("kiln-bench: {e}; continuing");
                    failed.push(format!("{system} --first-call: {e}"));
                }
            }
        }
        if !times.is_empty() {
            sink.push(Record::new(
                "blackscholes",
                "f64",
                1000,
                "first-call",
                system,
                median(times),
                0,
            ))?;
        }
    }
    Ok(PeersOutcome::Ran(failed))
}

/// ` (NUMBA_THREADING_LAYER=workqueue)` where a peer runs with extra environment.
fn env_note(system: &str) -> String {
    peers::peer_env(system)
        .iter()
        .map(|(k, v)| format!(" ({k}={v})"))
        .collect()
}

/// `peer / kiln` as `(1.23)`.
fn ratio(peer: f64, kiln: f64) -> String {
    format!("({:.2})", peer / kiln)
}

/// The report printed on stdout at the end.
fn report(
    cfg: &Config,
    cpus: usize,
    sink: &Sink,
    lat: &measure::Latency,
    peers: &PeersOutcome,
) -> String {
    let mut out: Vec<String> = Vec::new();
    out.push(format!(
        "Kiln benchmark: {} threads on {cpus} CPUs; median of {} timed runs after one warm-up.",
        cfg.threads, cfg.repeats
    ));
    // Peers that produced any row get a column.
    let shown: Vec<&str> = PEERS
        .iter()
        .copied()
        .filter(|p| sink.records.iter().any(|r| r.system == *p))
        .collect();
    match peers {
        PeersOutcome::NotAsked => out.push("Peers: not run (use --peers).".into()),
        PeersOutcome::Unavailable(e) => out.push(format!("Peers: unavailable, Kiln only ({e}).")),
        PeersOutcome::Ran(failed) => {
            let names: Vec<String> = shown
                .iter()
                .map(|p| format!("{p}{}", env_note(p)))
                .collect();
            out.push(format!("Peers: {}.", names.join(", ")));
            out.push(
                "Peer columns: median time (peer time / Kiln time; > 1 means Kiln is faster). \
                 NumPy is single-threaded; NumExpr has no erfc (no blackscholes) and sums on \
                 one thread; a @vectorize ufunc cannot reduce (no sumsq)."
                    .into(),
            );
            out.extend(failed.iter().map(|f| format!("Peer failure: {f}")));
        }
    }
    out.push(String::new());
    out.push(throughput_table(sink, &shown));

    // Bandwidth: the triad against Kiln's saxpy f64 at the same n.
    if let Some(s) = sink.records.iter().find(|r| r.system == "stream") {
        out.push(String::new());
        out.push(format!(
            "stream: plain Rust triad a[i] = b[i] + s*c[i] over f64 with rayon ({} threads), \
             n={}, 24 B/elem: {} = {} GB/s.",
            cfg.threads,
            fmt_n(s.n),
            fmt_time(s.median_s),
            fmt_rate(s.gbps)
        ));
        for mode in ["out", "alloc"] {
            if let Some(k) = sink.find("kiln", "saxpy", "f64", s.n, mode) {
                out.push(format!(
                    "  Kiln saxpy f64 {mode} at n={}: {} GB/s = {:.0}% of the triad.",
                    fmt_n(s.n),
                    fmt_rate(k.gbps),
                    100.0 * k.gbps / s.gbps
                ));
            }
        }
    }

    // Per-call overhead.
    out.push(String::new());
    out.push(format!(
        "Per-call overhead: saxpy f64, n={}, preallocated output (Kiln: median of \
         {OVERHEAD_CALLS} calls; peers: their n={} `out` median):",
        fmt_n(OVERHEAD_N),
        fmt_n(OVERHEAD_N)
    ));
    let find_kiln = |mode: &str| sink.find("kiln", "saxpy", "f64", OVERHEAD_N, mode);
    let base = find_kiln("overhead").map(|r| r.median_s);
    let mut rows = Vec::new();
    for (mode, what) in [
        ("overhead", "kiln, typed handle (TypedUfunc::call_into)"),
        ("overhead-dyn", "kiln, dtype-dynamic (Ufunc::call_into)"),
    ] {
        if let Some(r) = find_kiln(mode) {
            rows.push(vec![what.to_string(), fmt_time(r.median_s), String::new()]);
        }
        if let Some(r) = sink.find("kiln", "saxpy", "f64", 1, mode) {
            rows.push(vec![
                format!("{what}, n=1: the fixed cost"),
                fmt_time(r.median_s),
                String::new(),
            ]);
        }
    }
    for p in &shown {
        if let (Some(r), Some(b)) = (sink.find(p, "saxpy", "f64", OVERHEAD_N, "out"), base) {
            rows.push(vec![
                format!("{p}{}", env_note(p)),
                fmt_time(r.median_s),
                ratio(r.median_s, b),
            ]);
        }
    }
    out.push(render_table(
        &["system".into(), "per call".into(), "vs kiln typed".into()],
        &rows,
        1,
    ));

    // Compile latency.
    out.push(String::new());
    out.push(format!(
        "Compile latency: blackscholes module, source -> callable native code (Kiln: median \
         of {COMPILES} fresh compiles; Numba: median of {FIRST_CALL_PROCESSES} fresh processes):"
    ));
    let mut rows = vec![
        vec![
            "kiln compile (parse, check, lower, optimise)".to_string(),
            fmt_time(lat.compile_s),
            String::new(),
        ],
        vec![
            "kiln compile + first call at n=1e3 (Cranelift codegen)".to_string(),
            fmt_time(lat.first_call_s),
            String::new(),
        ],
    ];
    for p in ["numba-njit", "numba-vectorize"] {
        if let Some(r) = sink.find(p, "blackscholes", "f64", 1000, "first-call") {
            rows.push(vec![
                format!("{p} first call at n=1e3{}", env_note(p)),
                fmt_time(r.median_s),
                ratio(r.median_s, lat.first_call_s),
            ]);
        }
    }
    out.push(render_table(
        &["what".into(), "median".into(), "vs kiln first call".into()],
        &rows,
        1,
    ));
    out.push(format!(
        "(Not included: creating Kiln's back end and Jit, {}. Numba's first call includes \
         its one-time LLVM initialisation and thread-pool start.)",
        fmt_time(lat.backend_s)
    ));
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Kiln's throughput rows (with each shown peer beside them), then the triad.
fn throughput_table(sink: &Sink, shown: &[&str]) -> String {
    let mut header: Vec<String> = ["kernel", "dtype", "n", "mode", "kiln", "Melem/s", "GB/s"]
        .map(String::from)
        .to_vec();
    header.extend(shown.iter().map(|p| p.to_string()));
    let mut rows = Vec::new();
    let kiln = sink
        .records
        .iter()
        .filter(|r| r.system == "kiln" && (r.mode == "out" || r.mode == "alloc"));
    for k in kiln {
        let mut row = vec![
            k.kernel.clone(),
            k.dtype.clone(),
            fmt_n(k.n),
            k.mode.clone(),
            fmt_time(k.median_s),
            fmt_rate(k.melems()),
            fmt_rate(k.gbps),
        ];
        for p in shown {
            row.push(match sink.find(p, &k.kernel, &k.dtype, k.n, &k.mode) {
                Some(r) => format!("{} {}", fmt_time(r.median_s), ratio(r.median_s, k.median_s)),
                None => "-".into(),
            });
        }
        rows.push(row);
    }
    for s in sink.records.iter().filter(|r| r.system == "stream") {
        let mut row = vec![
            s.kernel.clone(),
            s.dtype.clone(),
            fmt_n(s.n),
            "stream".into(),
            fmt_time(s.median_s),
            fmt_rate(s.melems()),
            fmt_rate(s.gbps),
        ];
        row.extend(shown.iter().map(|_| String::new()));
        rows.push(row);
    }
    render_table(&header, &rows, 4)
}
