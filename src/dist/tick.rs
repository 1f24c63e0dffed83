//! Ticks and dead-peer detection, as OTP does them (sans-IO: time and I/O counters in, an
//! action out).
//!
//! OTP: net_kernel's ticker (`net_kernel:ticker_loop/2`) sends `tick` to every connection every
//! `net_ticktime / net_tickintensity` (intensity 4 by default: 15 s of 60 s), and each connection
//! runs `dist_util:send_tick/2`: if nothing was read since the previous check *and* the tick
//! counter has come round to the check at which something was last read, the peer is declared
//! dead (`net_tick_timeout`); otherwise, if nothing was written since the previous check and no
//! write is pending, a tick (empty frame) goes out. Detection therefore takes between
//! `intensity` and `intensity + 1` intervals after the last frame read, 45-75 s by default,
//! 4-5 s with `net_ticktime 4` (otp25-traces.md section 6 measured 4.5 s and 5.0 s).
//!
//! One deliberate difference: OTP starts its "last read" marker at a value the counter never
//! takes, so a peer that goes silent right after the handshake, before sending any frame, is
//! never detected. Here the end of the handshake counts as the last read.

use std::time::{Duration, Instant};

/// `net_tickintensity` default.
pub const DEFAULT_TICK_INTENSITY: u32 = 4;
/// `net_ticktime` default.
pub const DEFAULT_NET_TICKTIME: Duration = Duration::from_secs(60);

/// I/O counters a connection keeps for the ticker (what `erlang:dist_get_stat/1` returns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Frames (or reads) received so far, ticks included.
    pub read: u64,
    /// Frames written so far, ticks included.
    pub written: u64,
    /// Something is queued or being written right now.
    pub pending_write: bool,
}

/// What to do at a tick check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickAction {
    /// Nothing.
    Nothing,
    /// Write a tick (empty frame).
    SendTick,
    /// Nothing read for `intensity` intervals: the peer is dead (`net_tick_timeout`).
    PeerDead,
}

/// The per-connection tick state (`#tick{}` of dist_util.erl).
#[derive(Debug, Clone)]
pub struct Ticker {
    interval: Duration,
    intensity: u32,
    hidden: bool,
    next: Instant,
    tick: u32,
    ticked: u32,
    read: u64,
    write: u64,
}

impl Ticker {
    /// A ticker for `net_ticktime` and intensity (clamped to OTP's 4..=1000), starting `now`.
    /// `hidden` ticks also whenever nothing was read (`need_to_tick(hidden, 0, _, _)`).
    pub fn new(net_ticktime: Duration, intensity: u32, hidden: bool, now: Instant) -> Ticker {
        let intensity = intensity.clamp(4, 1000);
        let interval = (net_ticktime / intensity).max(Duration::from_millis(1));
        Ticker {
            interval,
            intensity,
            hidden,
            next: now + interval,
            tick: 0,
            ticked: intensity,
            read: 0,
            write: 0,
        }
    }

    /// Time between checks (`net_ticktime / intensity`).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When [`Self::on_timer`] must run next.
    pub fn next_check(&self) -> Instant {
        self.next
    }

    /// One check (`dist_util:send_tick/2`); call at or after [`Self::next_check`].
    pub fn on_timer(&mut self, now: Instant, stats: IoStats) -> TickAction {
        if now < self.next {
            return TickAction::Nothing;
        }
        self.next = now + self.interval;
        let t = self.tick + 1;
        let read_diff = stats.read.wrapping_sub(self.read);
        if read_diff == 0 && self.ticked == t {
            return TickAction::PeerDead;
        }
        let nothing_written = stats.written == self.write && !stats.pending_write;
        let need = nothing_written || (self.hidden && read_diff == 0);
        let action = if need {
            self.write = stats.written + 1;
            TickAction::SendTick
        } else {
            self.write = stats.written;
            TickAction::Nothing
        };
        if read_diff != 0 {
            self.ticked = t;
        }
        self.tick = t % self.intensity;
        self.read = stats.read;
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// Runs checks every interval; `reads[i]` / `writes[i]` say whether a frame arrived / was
    /// written during interval i. Returns the actions.
    fn run(
        ticker: &mut Ticker,
        start: Instant,
        reads: &[bool],
        writes: &[bool],
    ) -> Vec<TickAction> {
        let mut stats = IoStats::default();
        let mut out = Vec::new();
        for i in 0..reads.len() {
            if reads[i] {
                stats.read += 1;
            }
            if writes[i] {
                stats.written += 1;
            }
            let at = start + ticker.interval() * (i as u32 + 1);
            let a = ticker.on_timer(at, stats);
            if a == TickAction::SendTick {
                stats.written += 1;
            }
            out.push(a);
            if a == TickAction::PeerDead {
                break;
            }
        }
        out
    }

    #[test]
    fn interval_is_ticktime_over_intensity() {
        let t = Ticker::new(Duration::from_secs(4), 4, false, Instant::now());
        assert_eq!(t.interval(), SEC);
        let t = Ticker::new(Duration::from_secs(60), 4, false, Instant::now());
        assert_eq!(t.interval(), Duration::from_secs(15));
    }

    #[test]
    fn idle_connection_ticks_every_interval_and_stays_up_while_peer_ticks() {
        let now = Instant::now();
        let mut t = Ticker::new(Duration::from_secs(4), 4, false, now);
        let acts = run(&mut t, now, &[true; 12], &[false; 12]);
        assert_eq!(acts, vec![TickAction::SendTick; 12]);
    }

    #[test]
    fn no_tick_when_something_was_written() {
        let now = Instant::now();
        let mut t = Ticker::new(Duration::from_secs(4), 4, false, now);
        let acts = run(&mut t, now, &[true; 3], &[true, false, true]);
        assert_eq!(
            acts,
            vec![
                TickAction::Nothing,
                TickAction::SendTick,
                TickAction::Nothing
            ]
        );
    }

    #[test]
    fn pending_write_suppresses_the_tick() {
        let now = Instant::now();
        let mut t = Ticker::new(Duration::from_secs(4), 4, false, now);
        let stats = IoStats {
            read: 1,
            written: 0,
            pending_write: true,
        };
        assert_eq!(t.on_timer(now + SEC, stats), TickAction::Nothing);
    }

    #[test]
    fn silent_peer_is_dead_after_intensity_intervals() {
        let now = Instant::now();
        let mut t = Ticker::new(Duration::from_secs(4), 4, false, now);
        // Peer sends in the first two intervals, then goes silent.
        let mut reads = vec![true, true];
        reads.extend([false; 10]);
        let acts = run(&mut t, now, &reads, &[false; 12]);
        // Checks 3, 4, 5 tick; check 6 (4 intervals after the last read was seen) is dead.
        assert_eq!(acts.len(), 6);
        assert_eq!(acts[5], TickAction::PeerDead);
        assert!(acts[..5].iter().all(|a| *a == TickAction::SendTick));
    }

    #[test]
    fn peer_silent_from_the_start_is_detected_too() {
        let now = Instant::now();
        let mut t = Ticker::new(Duration::from_secs(4), 4, false, now);
        let acts = run(&mut t, now, &[false; 10], &[false; 10]);
        assert_eq!(acts.len(), 4);
        assert_eq!(acts[3], TickAction::PeerDead);
    }

    #[test]
    fn detection_window_matches_otp() {
        // Last frame read just after a check: dead 5 intervals later; just before: 4.
        let now = Instant::now();
        let mut t = Ticker::new(Duration::from_secs(4), 4, false, now);
        let mut stats = IoStats {
            read: 1,
            ..Default::default()
        };
        assert_eq!(t.on_timer(now + SEC, stats), TickAction::SendTick);
        stats.written += 1;
        // A frame arrives at 1.01 s, then silence.
        stats.read += 1;
        let mut dead_at = None;
        for i in 2..10u32 {
            let a = t.on_timer(now + SEC * i, stats);
            if a == TickAction::SendTick {
                stats.written += 1;
            }
            if a == TickAction::PeerDead {
                dead_at = Some(i);
                break;
            }
        }
        // Seen at check 2 (2 s); dead at check 6 (6 s): 4.99 s after the frame.
        assert_eq!(dead_at, Some(6));
    }

    #[test]
    fn early_timer_call_does_nothing() {
        let now = Instant::now();
        let mut t = Ticker::new(Duration::from_secs(4), 4, false, now);
        assert_eq!(t.on_timer(now, IoStats::default()), TickAction::Nothing);
        assert_eq!(t.next_check(), now + SEC);
    }
}
