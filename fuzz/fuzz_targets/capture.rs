//! The pcap / pcapng reader on arbitrary bytes.
//!
//! Oracle: nothing panics, iteration ends, and a corrupt file yields its readable data,
//! then exactly one `Err`, then `None` (as `CaptureReader` documents).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipcti_capture::CaptureReader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::from_bytes(data.to_vec()) else {
        return;
    };
    let mut items = 0usize;
    while let Some(item) = reader.next() {
        items += 1;
        assert!(items < 1_000_000, "the reader does not end");
        if item.is_err() {
            assert!(reader.next().is_none(), "an item after the error");
            break;
        }
    }
    let _ = reader.stats();
});
