//! pcapng blocks (<https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html>):
//! reading one whole block (general block structure; a Section Header Block's
//! byte-order magic sets the endianness of its section), the interfaces of a
//! section (Interface Description Blocks, with `if_tsresol` and `if_tsoffset`),
//! and the packets of Enhanced, Simple and obsolete Packet Blocks, handed to the
//! per-packet pipeline. Other block types are skipped.

use std::time::Duration;

use pcap_parser::pcapng::{Block, PcapNGOption};
use pcap_parser::traits::PcapNGPacketBlock;

use super::{read_full, u32_at, CaptureReader, Format};
use crate::link;
use crate::CaptureError;

pub(super) const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 0x0000_0001;
const PCAPNG_PB: u32 = 0x0000_0002;
const PCAPNG_SPB: u32 = 0x0000_0003;
const PCAPNG_EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

/// One pcapng interface (Interface Description Block).
#[derive(Debug)]
pub(super) struct Iface {
    linktype: u32,
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`).
    resolution: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

/// Capture time from a pcapng timestamp in `units` of 1/`resolution` s plus
/// `offset` seconds.
fn ng_time(units: u64, resolution: u64, offset: i64) -> Duration {
    let resolution = resolution.max(1);
    let secs = units / resolution;
    let nanos = (u128::from(units % resolution) * 1_000_000_000 / u128::from(resolution)) as u32;
    let t = Duration::new(secs, nanos);
    if offset >= 0 {
        t.saturating_add(Duration::from_secs(offset.unsigned_abs()))
    } else {
        t.saturating_sub(Duration::from_secs(offset.unsigned_abs()))
    }
}

/// Reads `if_tsresol` (code 9) and `if_tsoffset` (code 14) from IDB options:
/// returns (units per second, offset in seconds); `None` for an unusable
/// resolution. Done here because pcap-parser 0.17 rejects every power-of-two
/// resolution and reads `if_tsoffset` as little-endian in big-endian sections.
fn idb_time_options(options: &[PcapNGOption<'_>], big_endian: bool) -> Option<(u64, i64)> {
    let mut resolution = 1_000_000;
    let mut offset = 0;
    for opt in options {
        match opt.code.0 {
            9 => {
                let v = *opt.value.first()?;
                resolution = if v & 0x80 != 0 {
                    1u64.checked_shl(u32::from(v & 0x7F))
                        .filter(|_| v & 0x7F <= 63)?
                } else {
                    10u64.checked_pow(u32::from(v))?
                };
            }
            14 => {
                let b: [u8; 8] = opt.value.get(..8)?.try_into().ok()?;
                offset = if big_endian {
                    i64::from_be_bytes(b)
                } else {
                    i64::from_le_bytes(b)
                };
            }
            _ => {}
        }
    }
    Some((resolution, offset))
}

impl CaptureReader {
    /// Reads one whole pcapng block into `self.buf`. `magic`: the first 4 bytes,
    /// if already consumed. Returns `Ok(false)` at the clean end of the file.
    pub(super) fn read_ng_block(&mut self, magic: Option<[u8; 4]>) -> Result<bool, CaptureError> {
        let next = self.packet + 1;
        let mut head = [0u8; 12];
        let have = match magic {
            Some(m) => {
                head[..4].copy_from_slice(&m);
                4
            }
            None => 0,
        };
        let n = have + read_full(&mut *self.src, &mut head[have..8])?;
        if n == 0 {
            return Ok(false);
        }
        if n < 8 {
            return Err(CaptureError::Truncated { packet: next });
        }
        let mut hlen = 8;
        let mut big_endian = match self.format {
            Format::PcapNg { big_endian, .. } => big_endian,
            Format::Pcap { .. } => false,
        };
        if head[..4] == PCAPNG_SHB.to_le_bytes() {
            // The byte-order magic decides the endianness of the new section.
            if read_full(&mut *self.src, &mut head[8..12])? < 4 {
                return Err(CaptureError::Truncated { packet: next });
            }
            hlen = 12;
            big_endian = match u32::from_le_bytes([head[8], head[9], head[10], head[11]]) {
                BYTE_ORDER_MAGIC => false,
                m if m == BYTE_ORDER_MAGIC.swap_bytes() => true,
                _ => {
                    return Err(CaptureError::Corrupt {
                        packet: next,
                        reason: "bad pcapng byte-order magic".into(),
                    })
                }
            };
            if let Format::PcapNg {
                big_endian: be,
                ifaces,
            } = &mut self.format
            {
                *be = big_endian;
                ifaces.clear();
            }
        }
        let len = u32_at(&head, 4, big_endian) as usize;
        if len < 12 || len & 3 != 0 || len < hlen {
            return Err(CaptureError::Corrupt {
                packet: next,
                reason: format!("bad pcapng block length {len}"),
            });
        }
        if len > self.limits.max_record_bytes {
            return Err(CaptureError::Corrupt {
                packet: next,
                reason: format!("pcapng block length {len} exceeds the limit"),
            });
        }
        self.buf.clear();
        self.buf.extend_from_slice(&head[..hlen]);
        self.buf.resize(len, 0);
        if read_full(&mut *self.src, &mut self.buf[hlen..])? < len - hlen {
            return Err(CaptureError::Truncated { packet: next });
        }
        Ok(true)
    }

    /// Interprets the pcapng block in `self.buf`.
    pub(super) fn handle_ng_block(&mut self) -> Result<(), CaptureError> {
        let Format::PcapNg { big_endian, .. } = self.format else {
            return Ok(());
        };
        let btype = u32_at(&self.buf, 0, big_endian);
        if !matches!(
            btype,
            PCAPNG_SHB | PCAPNG_IDB | PCAPNG_PB | PCAPNG_SPB | PCAPNG_EPB
        ) {
            return Ok(()); // statistics, name resolution, custom, ...: not needed
        }
        let next = self.packet + 1;
        let corrupt = |reason: String| CaptureError::Corrupt {
            packet: next,
            reason,
        };
        let buf = std::mem::take(&mut self.buf);
        let result = (|| {
            if btype == PCAPNG_PB {
                // Obsolete Packet Block: if_id(2) drops(2) ts_high ts_low caplen len data
                if buf.len() < 32 {
                    return Err(corrupt("short packet block".into()));
                }
                let raw = u32_at(&buf, 8, big_endian);
                let if_id = if big_endian { raw >> 16 } else { raw & 0xFFFF };
                let units = (u64::from(u32_at(&buf, 12, big_endian)) << 32)
                    | u64::from(u32_at(&buf, 16, big_endian));
                let caplen = u32_at(&buf, 20, big_endian) as usize;
                let data = buf
                    .get(28..28 + caplen)
                    .filter(|_| 28 + caplen <= buf.len() - 4)
                    .ok_or_else(|| corrupt("packet block length".into()))?;
                return self.ng_packet(if_id, Some(units), data, next);
            }
            let parsed = if big_endian {
                pcap_parser::parse_block_be(&buf)
            } else {
                pcap_parser::parse_block_le(&buf)
            };
            let block = parsed
                .map_err(|e| corrupt(format!("bad pcapng block: {e}")))?
                .1;
            match block {
                Block::SectionHeader(_) => Ok(()),
                Block::InterfaceDescription(idb) => {
                    let (resolution, offset) = idb_time_options(&idb.options, big_endian)
                        .ok_or_else(|| corrupt("bad if_tsresol".into()))?;
                    if let Format::PcapNg { ifaces, .. } = &mut self.format {
                        if ifaces.len() >= 65_536 {
                            return Err(corrupt("too many interfaces".into()));
                        }
                        ifaces.push(Iface {
                            linktype: (idb.linktype.0 as u32) & 0xFFFF,
                            snaplen: idb.snaplen,
                            resolution,
                            offset,
                        });
                    }
                    Ok(())
                }
                Block::EnhancedPacket(epb) => {
                    let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                    self.ng_packet(epb.if_id, Some(units), epb.packet_data(), next)
                }
                Block::SimplePacket(spb) => {
                    let mut data = spb.packet_data();
                    if let Format::PcapNg { ifaces, .. } = &self.format {
                        if let Some(i) = ifaces.first() {
                            if i.snaplen > 0 && data.len() > i.snaplen as usize {
                                data = &data[..i.snaplen as usize];
                            }
                        }
                    }
                    self.ng_packet(0, None, data, next)
                }
                _ => Ok(()),
            }
        })();
        self.buf = buf;
        result
    }

    /// Processes a pcapng packet of interface `if_id` with timestamp `units` (in
    /// the interface's resolution; `None` for SPBs, which have none).
    fn ng_packet(
        &mut self,
        if_id: u32,
        units: Option<u64>,
        data: &[u8],
        next: u64,
    ) -> Result<(), CaptureError> {
        let Format::PcapNg { ifaces, .. } = &self.format else {
            return Ok(());
        };
        let Some(iface) = ifaces.get(if_id as usize) else {
            return Err(CaptureError::Corrupt {
                packet: next,
                reason: format!("packet of undeclared interface {if_id}"),
            });
        };
        let linktype = iface.linktype;
        let ts = match units {
            Some(u) => ng_time(u, iface.resolution, iface.offset),
            None => self.last_ts,
        };
        self.packet = next;
        self.stats.packets += 1;
        if link::is_supported(linktype) {
            self.process(linktype, data, ts);
        } else {
            self.stats.skipped_non_ip += 1;
            self.last_ts = ts;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_time_resolution_and_offset() {
        assert_eq!(
            ng_time(1_500_000, 1_000_000, 0),
            Duration::from_millis(1500)
        );
        assert_eq!(ng_time(3, 2, 0), Duration::from_millis(1500));
        assert_eq!(
            ng_time(1_000_000_001, 1_000_000_000, 10),
            Duration::new(11, 1)
        );
        assert_eq!(ng_time(5, 1, -10), Duration::ZERO);
        assert_eq!(ng_time(5, 0, 0), Duration::from_secs(5));
        assert_eq!(
            ng_time(3 << 20 | 1 << 19, 1 << 20, 0),
            Duration::from_millis(3500)
        );
    }
}
