//! Classic pcap packet records
//! (<https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html>, "Packet
//! Record"; both byte orders, microsecond and nanosecond timestamps, and the
//! modified format of magic `0xa1b2cd34` with its longer record header):
//! reading one record and handing its packet to the per-packet pipeline. The
//! file header is read by [`CaptureReader::from_reader`].

use std::time::Duration;

use super::{read_full, u32_at, CaptureReader, Format};
use crate::CaptureError;

impl CaptureReader {
    pub(super) fn step_pcap(&mut self) -> Result<bool, CaptureError> {
        let Format::Pcap {
            big_endian,
            nanos,
            modified,
            linktype,
        } = self.format
        else {
            return Ok(false);
        };
        let next = self.packet + 1;
        let hlen = if modified { 24 } else { 16 };
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(hlen, 0);
        let n = read_full(&mut *self.src, &mut buf)?;
        if n == 0 {
            self.buf = buf;
            return Ok(false);
        }
        if n < hlen {
            return Err(CaptureError::Truncated { packet: next });
        }
        let caplen = u32_at(&buf, 8, big_endian) as usize;
        if caplen > self.limits.max_record_bytes {
            return Err(CaptureError::Corrupt {
                packet: next,
                reason: format!("record length {caplen} exceeds the limit"),
            });
        }
        buf.resize(hlen + caplen, 0);
        if read_full(&mut *self.src, &mut buf[hlen..])? < caplen {
            return Err(CaptureError::Truncated { packet: next });
        }
        let parsed = if modified {
            pcap_parser::parse_pcap_frame_modified(&buf)
        } else if big_endian {
            pcap_parser::parse_pcap_frame_be(&buf)
        } else {
            pcap_parser::parse_pcap_frame(&buf)
        };
        let block = parsed
            .map_err(|e| CaptureError::Corrupt {
                packet: next,
                reason: format!("bad record: {e}"),
            })?
            .1;
        let frac = if nanos {
            Duration::from_nanos(u64::from(block.ts_usec))
        } else {
            Duration::from_micros(u64::from(block.ts_usec))
        };
        let ts = Duration::from_secs(u64::from(block.ts_sec)) + frac;
        self.packet = next;
        self.stats.packets += 1;
        self.process(linktype, block.data, ts);
        self.buf = buf;
        Ok(true)
    }
}
