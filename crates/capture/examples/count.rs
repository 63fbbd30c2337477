//! Reads captures and prints packets, datagrams, TCP bytes and the reading speed.
//!
//! Usage: `cargo run --release -p sipcti-capture --example count -- FILE...`

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use sipcti_capture::{CaptureReader, Transport};

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: count CAPTURE...");
        std::process::exit(2);
    }
    let mut failed = false;
    for path in paths {
        let start = Instant::now();
        let mut reader = match CaptureReader::open(Path::new(&path)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
                continue;
            }
        };
        let (mut udp, mut tcp_chunks, mut tcp_bytes, mut gaps) = (0u64, 0u64, 0u64, 0u64);
        for item in reader.by_ref() {
            match item {
                Ok(d) => match d.transport {
                    Transport::Udp => udp += 1,
                    Transport::Tcp => {
                        tcp_chunks += 1;
                        tcp_bytes += d.payload.len() as u64;
                        gaps += u64::from(d.gap_before);
                    }
                },
                Err(e) => {
                    eprintln!("{path}: {e}");
                    failed = true;
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let s = reader.stats();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{path}: {} packets, {} UDP datagrams, {} TCP chunks ({} bytes, {} after a gap), \
             {:.0} packets/s, {:.0} datagrams/s",
            s.packets,
            udp,
            tcp_chunks,
            tcp_bytes,
            gaps,
            s.packets as f64 / secs,
            (udp + tcp_chunks) as f64 / secs,
        );
        let _ = writeln!(out, "  {s:?}");
    }
    if failed {
        std::process::exit(1);
    }
}
