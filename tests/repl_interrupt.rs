//! Interrupting a running kernel (what Ctrl-C does at the REPL): the request stops native
//! code in a loop, the session survives with its variables. One test per binary, because
//! the interrupt flag is process-wide.

use std::sync::Arc;
use std::time::Duration;

use kiln::repl::Session;
use kiln::{Error, Threads};

#[test]
fn an_endless_loop_stops_and_the_session_survives() {
    for exec in [
        Arc::new(kiln::Cpu::new().unwrap()) as Arc<dyn kiln::Executor>,
        Arc::new(kiln::Interpreter::new(u64::MAX)),
    ] {
        let name = exec.name().to_string();
        let mut s = Session::new(exec, Threads::new(1).unwrap());
        let mut out = Vec::new();
        s.handle("let kept = 41;", &mut out).unwrap();
        s.handle(
            "fn spin(n: i64) -> i64 { var i = n; while i >= 0 { i += 1; } i }",
            &mut out,
        )
        .unwrap();
        kiln::interrupt::clear();
        let stopper = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            kiln::interrupt::request();
        });
        let t0 = std::time::Instant::now();
        let e = s.handle("spin(0)", &mut out).unwrap_err();
        stopper.join().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{name}: stopped late"
        );
        let Error::Runtime { error, .. } = &e else {
            panic!("{name}: {e}")
        };
        assert_eq!(error.kind, kiln::ErrorKind::Interrupted, "{name}");
        kiln::interrupt::clear();
        let mut out = Vec::new();
        s.handle("kept + 1", &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "42\n", "{name}");
    }
}
