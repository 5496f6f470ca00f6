//! DTMF key presses out of RFC 4733 `telephone-event` RTP packets, as a pure state machine.
//!
//! A key press travels as a run of packets sharing one RTP timestamp (the event's start):
//! the first ones while the key is down, then (usually three) copies of the final packet with
//! the end bit set. Packets are lost, duplicated and reordered like any RTP, and a long press
//! is split into segments with new timestamps (RFC 4733 §2.5.1.3). [`DtmfDetector`] turns all
//! that into exactly one digit per press, reported on the first packet of the press that
//! arrives — the earliest moment the press is known — whichever packet that is.

/// The `telephone-event` payload of one RTP packet (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TelephoneEvent {
    /// Event code: 0–9, 10 = `*`, 11 = `#`, 12–15 = `A`–`D`, others are not DTMF.
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Duration so far, in RTP clock units (8 kHz for WhatsApp).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the 4-byte payload; `None` when it is too short to be one. A payload may
    /// carry several events back to back (RFC 4733 §2.5.1.5: redundancy); the first block
    /// is the current one.
    pub(crate) fn parse(payload: &[u8]) -> Option<Self> {
        let block = payload.get(..4)?;
        Some(Self { event: block[0], end: block[1] & 0x80 != 0, duration: u16::from_be_bytes([block[2], block[3]]) })
    }

    /// The key, for DTMF event codes (0–15).
    pub(crate) fn digit(self) -> Option<char> {
        match self.event {
            0..=9 => Some(char::from(b'0' + self.event)),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + self.event - 12)),
            _ => None,
        }
    }
}

/// The press being received: its RTP timestamp, key, the longest duration seen and whether
/// its end has been seen.
#[derive(Debug, Clone, Copy)]
struct Press {
    timestamp: u32,
    event: u8,
    duration: u16,
    ended: bool,
}

/// One digit per key press, from the packets of one RTP stream in arrival order.
#[derive(Debug, Default)]
pub(crate) struct DtmfDetector {
    current: Option<Press>,
}

impl DtmfDetector {
    /// Feeds one `telephone-event` packet (its RTP timestamp and payload); returns the digit
    /// when this packet is the first one seen of a new key press.
    pub(crate) fn handle_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let packet = TelephoneEvent::parse(payload)?;
        if let Some(press) = &mut self.current {
            if press.timestamp == timestamp {
                // Retransmission, update or end of the press already reported.
                press.duration = press.duration.max(packet.duration);
                press.ended |= packet.end;
                return None;
            }
            // An older press arriving late (its packets overtaken by a newer press) is not
            // reported again: RTP timestamps only move forward, modulo wrap-around.
            if (timestamp.wrapping_sub(press.timestamp) as i32) < 0 {
                return None;
            }
            // The next segment of a long press continues where the previous one stopped.
            let continues = !press.ended
                && press.event == packet.event
                && timestamp == press.timestamp.wrapping_add(u32::from(press.duration));
            if continues {
                *press = Press { timestamp, event: packet.event, duration: packet.duration, ended: packet.end };
                return None;
            }
        }
        self.current = Some(Press { timestamp, event: packet.event, duration: packet.duration, ended: packet.end });
        packet.digit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let [high, low] = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, high, low]
    }

    /// A press as a sender emits it: packets every 50 ms (400 units at 8 kHz) while the key is
    /// down, then three end packets.
    fn press(timestamp: u32, event: u8, packets: u16) -> Vec<(u32, [u8; 4])> {
        let mut out: Vec<_> = (1..=packets).map(|n| (timestamp, payload(event, false, n * 400))).collect();
        out.extend((0..3).map(|_| (timestamp, payload(event, true, packets * 400 + 400))));
        out
    }

    fn digits(detector: &mut DtmfDetector, packets: &[(u32, [u8; 4])]) -> String {
        packets.iter().filter_map(|(ts, p)| detector.handle_packet(*ts, p)).collect()
    }

    #[test]
    fn a_press_with_its_redundant_end_packets_is_one_digit() {
        let mut detector = DtmfDetector::default();
        assert_eq!(digits(&mut detector, &press(1000, 5, 4)), "5");
    }

    #[test]
    fn consecutive_presses_of_the_same_key_are_separate_digits() {
        let mut detector = DtmfDetector::default();
        let mut packets = press(1000, 1, 3);
        packets.extend(press(9000, 1, 3));
        packets.extend(press(17000, 2, 2));
        assert_eq!(digits(&mut detector, &packets), "112");
    }

    #[test]
    fn a_press_whose_first_packets_were_lost_is_still_reported_once() {
        let mut detector = DtmfDetector::default();
        let only_end: Vec<_> = press(1000, 9, 4).into_iter().skip(4).collect();
        assert_eq!(only_end.len(), 3);
        assert_eq!(digits(&mut detector, &only_end), "9");
    }

    #[test]
    fn late_packets_of_an_earlier_press_are_not_reported_again() {
        let mut detector = DtmfDetector::default();
        let first = press(1000, 3, 2);
        let second = press(5000, 4, 2);
        let mut packets = vec![first[0]];
        packets.extend(second.iter().take(2).copied());
        packets.extend(first.iter().skip(1).copied());
        packets.extend(second.iter().skip(2).copied());
        assert_eq!(digits(&mut detector, &packets), "34");
    }

    #[test]
    fn the_segments_of_a_long_press_are_one_digit() {
        let mut detector = DtmfDetector::default();
        // The first segment reaches the maximum duration without ending; the second starts
        // where it stopped.
        let packets = [
            (1000, payload(7, false, 400)),
            (1000, payload(7, false, u16::MAX)),
            (1000u32.wrapping_add(u32::from(u16::MAX)), payload(7, false, 400)),
            (1000u32.wrapping_add(u32::from(u16::MAX)), payload(7, true, 800)),
        ];
        assert_eq!(digits(&mut detector, &packets), "7");
    }

    #[test]
    fn timestamps_wrap_around() {
        let mut detector = DtmfDetector::default();
        let mut packets = press(u32::MAX - 100, 0, 2);
        packets.extend(press(5000, 0, 2));
        assert_eq!(digits(&mut detector, &packets), "00");
    }

    #[test]
    fn every_dtmf_code_has_its_key_and_other_events_and_short_payloads_are_ignored() {
        let keys: String =
            (0..16).filter_map(|event| TelephoneEvent { event, end: false, duration: 0 }.digit()).collect();
        assert_eq!(keys, "0123456789*#ABCD");
        let mut detector = DtmfDetector::default();
        assert_eq!(detector.handle_packet(1, &payload(16, false, 400)), None, "flash is not a key");
        assert_eq!(detector.handle_packet(2, &[1, 2, 3]), None);
        assert_eq!(detector.handle_packet(3, &payload(11, false, 400)), Some('#'));
    }
}
