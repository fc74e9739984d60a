//! The backlog of one connection measured end to end: what has left campush's queue but has
//! not reached the server yet, in bytes, in frames, and in the time it takes the link (issue
//! 10).
//!
//! Owns: the byte count sent on a connection, a ring of (byte offset where a frame ended, its
//! capture timestamp) for the latest frames ([`Backlog`]), and the estimate of how many of those
//! bytes have arrived ([`Meter`]). From these the publisher tells the queue the capture time of
//! the oldest frame not yet at the server, the bytes in flight, and the link's rate (when the
//! server's acknowledgements give it); the queue's drop policy holds `queue.max_seconds` to the
//! lag that makes, not to its own length alone
//! ([`crate::queue::FrameQueue::set_oldest_in_flight`], [`crate::queue::FrameQueue::set_link`]).
//! Bytes become frames through the ring, so no bitrate estimate is needed for the media span;
//! the link's rate turns the bytes into the time they take to arrive, which behind a link
//! slower than the stream is the longer of the two.
//!
//! What has arrived, best source first:
//! 1. the server's RTMP Acknowledgements (Adobe RTMP 1.0 §5.4.3), once we announced a Window
//!    Acknowledgement Size: a sequence number that counts the bytes it received, modulo 2^32
//!    ([`PeerAcks`] unwraps it, and copes with servers that restart their count);
//! 2. where a server sends none: the kernel's send queue of the socket (`SIOCOUTQ`: bytes not
//!    yet sent plus bytes sent and not yet acknowledged by TCP, the quantity `TCP_INFO` gives as
//!    `tcpi_notsent_bytes` + unacknowledged segments, but exact in bytes). It sees campush's
//!    own socket and the path up to the next TCP endpoint; a terminating proxy's buffer or the
//!    server's own are invisible to it.
//!
//! Which servers acknowledge a publisher (measured against the servers of `tests/interop.rs`,
//! whose module doc has the details):
//!
//! | Server | Acknowledgements to a publisher |
//! |---|---|
//! | nginx-rtmp 1.2.2 | only once the publisher announced a window, every window; its count restarts at 0 past 0xF0000000 |
//! | node-media-server 2.7.4 | as nginx-rtmp (4.x never sends any) |
//! | scuffle-rtmp 0.2 (the in-process test server) | also without a window (2.5 MB default); count from before the read that crossed the window |
//! | ffmpeg `-listen 1` 5.1 | also without a window (every ~1 MiB); every half window with one |
//! | rtmplite3 0.4.0 | once a window was announced, every window; the count cannot pass 4 GiB |
//! | pyrtmp 0.3.1 | never |
//!
//! Invariants: the byte count only grows within a connection; the ring holds the latest frames
//! sent, in order (so byte offsets and timestamps both grow), at most its capacity (allocated
//! once: recording a frame never allocates); an estimate of what arrived is never above what was
//! sent ([`PeerAcks`] clamps). Sans-IO: no socket, no clock.

use std::collections::VecDeque;

/// One frame sent: where its bytes end in the connection's byte count, and its capture time.
#[derive(Debug, Clone, Copy)]
struct Sent {
    end: u64,
    timestamp_us: u64,
}

/// The frames sent on one connection and where their bytes end, to weigh any estimate of the
/// bytes that have arrived (the server's, the kernel's) in media time. Nothing is forgotten on
/// an acknowledgement, so two estimates can be asked about side by side; the ring forgets only
/// its oldest frames when full.
#[derive(Debug)]
pub struct Backlog {
    frames: VecDeque<Sent>,
    capacity: usize,
    sent: u64,
}

impl Backlog {
    /// A backlog that remembers the last `capacity` frames sent; a backlog of more frames than
    /// that is reported as the span of those it remembers, an underestimate (size it to several
    /// times the queue's bound: the policy only needs to know that the bound is exceeded).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Backlog {
            frames: VecDeque::with_capacity(capacity),
            capacity,
            sent: 0,
        }
    }

    /// A new connection: nothing sent.
    pub fn reset(&mut self) {
        self.frames.clear();
        self.sent = 0;
    }

    /// `bytes` more were written to the connection; `frame_timestamp_us`: they completed the
    /// frame captured then (None: commands, headers, the handshake).
    pub fn sent(&mut self, bytes: u64, frame_timestamp_us: Option<u64>) {
        self.sent += bytes;
        if let Some(ts) = frame_timestamp_us {
            if self.frames.len() == self.capacity {
                self.frames.pop_front();
            }
            self.frames.push_back(Sent {
                end: self.sent,
                timestamp_us: ts,
            });
        }
    }

    /// Bytes written on this connection.
    pub fn sent_bytes(&self) -> u64 {
        self.sent
    }

    /// Bytes written and not known to have arrived, when the first `acked` bytes have.
    pub fn in_flight_bytes(&self, acked: u64) -> u64 {
        self.sent.saturating_sub(acked)
    }

    /// The capture time of the oldest frame not wholly arrived when the first `acked` bytes of
    /// the connection have (None: every frame has).
    pub fn oldest_in_flight(&self, acked: u64) -> Option<u64> {
        let first_missing = self.frames.partition_point(|f| f.end <= acked);
        self.frames.get(first_missing).map(|f| f.timestamp_us)
    }

    /// Media time in flight when the first `acked` bytes of the connection have arrived: from
    /// the oldest frame not wholly arrived to the newest frame sent; 0 when every frame has.
    pub fn in_flight_us(&self, acked: u64) -> u64 {
        match (self.oldest_in_flight(acked), self.frames.back()) {
            (Some(oldest), Some(newest)) => newest.timestamp_us.saturating_sub(oldest),
            _ => 0,
        }
    }
}

/// The server's Acknowledgement sequence numbers (bytes received, modulo 2^32) made into a byte
/// count of the connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct PeerAcks {
    total: u64,
    last: Option<u32>,
}

impl PeerAcks {
    /// Takes the sequence number `seq` of a new Acknowledgement, with `sent` bytes written so
    /// far, and returns the bytes the server has received by this count.
    ///
    /// A sequence number ahead of the previous one (modulo 2^32, so wrapping past 2^32 is
    /// progress too) by no more than was sent since is progress. Anything else means the server
    /// restarted its count (nginx-rtmp does past 0xF0000000): the restart came after the
    /// previous acknowledgement, so the previous total plus `seq` is at most the truth, and the
    /// backlog is overestimated by less than a window until the next one, never underestimated.
    pub fn on_ack(&mut self, seq: u32, sent: u64) -> u64 {
        self.total = match self.last {
            None => u64::from(seq),
            Some(prev) => {
                let delta = u64::from(seq.wrapping_sub(prev));
                if delta <= sent.saturating_sub(self.total) {
                    self.total + delta
                } else {
                    self.total + u64::from(seq)
                }
            }
        }
        .min(sent);
        self.last = Some(seq);
        self.total
    }
}

/// Which estimate of what has arrived a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimate {
    /// No acknowledgement yet: the kernel's send queue until the server sends one, or until it
    /// has had [`NO_ACKS_AFTER_WINDOWS`] windows and [`NO_ACKS_AFTER_US`] without sending any.
    Pending,
    /// The server's Acknowledgements (bounded by the kernel's send queue).
    ServerAcks,
    /// The kernel's send queue only: the server sends no acknowledgements, they stopped, or
    /// they are not to be used.
    KernelQueue,
}

/// The server has had this many of our windows, and this long, without acknowledging: it sends
/// none. (Both: an unpaced push sends many windows before the first acknowledgement can come
/// back.)
pub const NO_ACKS_AFTER_WINDOWS: u64 = 4;
pub const NO_ACKS_AFTER_US: u64 = 1_000_000;
/// Acknowledgements that stop for this long, while more than two of the server's windows are
/// unacknowledged, are taken to have stopped for good on this connection: the kernel's send
/// queue is used instead (a server that stopped counting would otherwise make the backlog grow
/// without end, and the queue drop everything).
pub const ACKS_STALE_US: u64 = 10_000_000;

/// The backlog of one connection: frames sent ([`Backlog`]), the server's acknowledgements
/// ([`PeerAcks`]) and the kernel's send queue, and the choice between them. Sans-IO: the caller
/// passes the time and the kernel's figure.
///
/// With acknowledgements, what has arrived is the server's count, plus what it has received
/// since at the rate it received the last window, up to one more window (it acknowledges once
/// per window: had it received a whole window more, it would have said so); never more than the
/// kernel says has left the socket, so a server that acknowledges only every few megabytes
/// weighs no more than the kernel's figure. Without the time since the last acknowledgement,
/// the tail of a stream that stopped (less than a window, which the server never acknowledges)
/// would seem on its way forever, and the queue would refuse every frame after it.
#[derive(Debug)]
pub struct Meter {
    backlog: Backlog,
    peer: PeerAcks,
    use_acks: bool,
    window: u64,
    estimate: Estimate,
    acks_seen: u64,
    server_acked: u64,
    spacing: u64,
    last_ack_us: u64,
    started_us: u64,
    /// The latest time given to [`Meter::update`] or [`Meter::on_peer_ack`].
    now_us: u64,
    /// Bytes per µs the server received between its last two acknowledgements.
    rate_per_us: f64,
    /// The same, smoothed, from intervals in which the link was the bottleneck (0: not known).
    link_per_us: f64,
    /// Bytes sent when the latest acknowledgement came.
    sent_at_last_ack: u64,
    kernel_acked: Option<u64>,
}

impl Meter {
    /// `capacity`: frames remembered ([`Backlog::with_capacity`]); `window`: the Window
    /// Acknowledgement Size announced; `use_acks`: false to measure by the kernel only.
    pub fn new(capacity: usize, window: u32, use_acks: bool) -> Self {
        Meter {
            backlog: Backlog::with_capacity(capacity),
            peer: PeerAcks::default(),
            use_acks,
            window: u64::from(window.max(1)),
            estimate: Estimate::Pending,
            acks_seen: 0,
            server_acked: 0,
            spacing: 0,
            last_ack_us: 0,
            started_us: 0,
            now_us: 0,
            rate_per_us: 0.0,
            link_per_us: 0.0,
            sent_at_last_ack: 0,
            kernel_acked: None,
        }
    }

    /// A new connection, at `now_us`.
    pub fn reset(&mut self, now_us: u64) {
        self.backlog.reset();
        self.peer = PeerAcks::default();
        self.estimate = Estimate::Pending;
        self.acks_seen = 0;
        self.server_acked = 0;
        self.spacing = 0;
        self.last_ack_us = now_us;
        self.started_us = now_us;
        self.now_us = now_us;
        self.rate_per_us = 0.0;
        self.link_per_us = 0.0;
        self.sent_at_last_ack = 0;
        self.kernel_acked = None;
    }

    /// See [`Backlog::sent`].
    pub fn sent(&mut self, bytes: u64, frame_timestamp_us: Option<u64>) {
        self.backlog.sent(bytes, frame_timestamp_us);
    }

    /// The session's latest acknowledgement: sequence number `seq`, `count` received so far.
    /// Does nothing unless `count` is new.
    pub fn on_peer_ack(&mut self, seq: u32, count: u64, now_us: u64) {
        if count == self.acks_seen || !self.use_acks {
            return;
        }
        self.acks_seen = count;
        let total = self.peer.on_ack(seq, self.backlog.sent_bytes());
        let spacing = total.saturating_sub(self.server_acked);
        if spacing > 0 {
            let since = now_us.saturating_sub(self.last_ack_us).max(1);
            self.rate_per_us = spacing as f64 / since as f64;
            self.spacing = spacing;
            // The link's rate, smoothed over a few acknowledgements, from intervals in which
            // the link was the bottleneck only: the window acknowledged now had all been sent
            // by the previous acknowledgement. Otherwise the interval measures how fast campush
            // sent (a quiet scene, a camera that stalled), not what the link can take.
            let waiting = self.sent_at_last_ack.saturating_sub(self.server_acked);
            if waiting >= spacing && self.acks_seen > 1 {
                self.link_per_us = if self.link_per_us > 0.0 {
                    0.75 * self.link_per_us + 0.25 * self.rate_per_us
                } else {
                    self.rate_per_us
                };
            }
        }
        self.sent_at_last_ack = self.backlog.sent_bytes();
        self.last_ack_us = now_us;
        self.now_us = self.now_us.max(now_us);
        self.server_acked = self.server_acked.max(total);
    }

    /// The kernel's send queue of the socket, in bytes (`None`: unknown).
    pub fn on_kernel_queue(&mut self, queued: Option<u64>) {
        self.kernel_acked = queued.map(|q| self.backlog.sent_bytes().saturating_sub(q));
    }

    /// Moves between estimates as acknowledgements come, never come, or stop. Returns the new
    /// estimate when it changed (for the caller to say so, once).
    pub fn update(&mut self, now_us: u64) -> Option<Estimate> {
        self.now_us = self.now_us.max(now_us);
        let next = match self.estimate {
            _ if !self.use_acks => Estimate::KernelQueue,
            Estimate::Pending if self.acks_seen > 0 => Estimate::ServerAcks,
            Estimate::Pending
                if self.backlog.sent_bytes() > NO_ACKS_AFTER_WINDOWS * self.window + 4096
                    && now_us.saturating_sub(self.started_us) > NO_ACKS_AFTER_US =>
            {
                Estimate::KernelQueue
            }
            Estimate::ServerAcks
                if now_us.saturating_sub(self.last_ack_us) > ACKS_STALE_US
                    && self.backlog.in_flight_bytes(self.server_acked)
                        > 2 * self.spacing.max(self.window) =>
            {
                Estimate::KernelQueue
            }
            // Acknowledgements that come back (after a stall, or late) are used again.
            Estimate::KernelQueue
                if self.use_acks
                    && now_us.saturating_sub(self.last_ack_us) < ACKS_STALE_US
                    && self.acks_seen > 0 =>
            {
                Estimate::ServerAcks
            }
            same => same,
        };
        (next != self.estimate).then(|| {
            self.estimate = next;
            next
        })
    }

    /// The end of the connection: a server that had more than [`NO_ACKS_AFTER_WINDOWS`]
    /// windows and sent no acknowledgement sends none, however short the connection was.
    /// Returns the estimate when that changed it (for the caller to say so).
    pub fn finish(&mut self) -> Option<Estimate> {
        let none_sent = self.estimate == Estimate::Pending
            && self.acks_seen == 0
            && self.backlog.sent_bytes() > NO_ACKS_AFTER_WINDOWS * self.window + 4096;
        none_sent.then(|| {
            self.estimate = Estimate::KernelQueue;
            Estimate::KernelQueue
        })
    }

    /// The estimate in use.
    pub fn estimate(&self) -> Estimate {
        self.estimate
    }

    /// Bytes the estimate in use takes to have arrived (at the time of the latest
    /// [`Meter::update`]).
    fn arrived(&self) -> u64 {
        let kernel = self.kernel_acked.unwrap_or(self.backlog.sent_bytes());
        match self.estimate {
            Estimate::ServerAcks => {
                let since = self.now_us.saturating_sub(self.last_ack_us) as f64;
                let more = (self.rate_per_us * since) as u64;
                (self.server_acked + more.min(self.spacing)).min(kernel)
            }
            Estimate::Pending | Estimate::KernelQueue => kernel,
        }
    }

    /// The rate at which the server has been receiving, in bytes per second, smoothed over its
    /// last few acknowledgements; known only while they are the estimate in use. While the
    /// link is the bottleneck this is its rate (while it is not, the backlog is small anyway):
    /// the backlog's bytes divided by it is how long they take to arrive.
    pub fn link_bytes_per_s(&self) -> Option<u64> {
        (self.estimate == Estimate::ServerAcks && self.link_per_us > 0.0)
            .then_some((self.link_per_us * 1e6) as u64)
            .filter(|r| *r > 0)
    }

    /// Bytes in flight by the estimate in use.
    pub fn in_flight_bytes(&self) -> u64 {
        self.backlog.in_flight_bytes(self.arrived())
    }

    /// The capture time of the oldest frame not yet arrived, by the estimate in use.
    pub fn oldest_in_flight(&self) -> Option<u64> {
        self.backlog.oldest_in_flight(self.arrived())
    }

    /// Media time in flight by the estimate in use.
    pub fn in_flight_us(&self) -> u64 {
        self.backlog.in_flight_us(self.arrived())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 frames of 1000 bytes, one every 100 ms, after a 3073-byte handshake.
    fn streamed(capacity: usize) -> Backlog {
        let mut b = Backlog::with_capacity(capacity);
        b.sent(3073, None);
        for i in 0..30 {
            b.sent(1000, Some(i * 100_000));
        }
        b
    }

    #[test]
    fn nothing_acknowledged_means_everything_sent_is_in_flight() {
        let b = streamed(64);
        assert_eq!(b.in_flight_bytes(0), 33_073);
        assert_eq!(b.in_flight_us(0), 2_900_000);
    }

    #[test]
    fn bytes_acknowledged_become_the_frames_they_carried() {
        let b = streamed(64);
        // Up to the end of frame 19 (the handshake, then 20 frames).
        let acked = 3073 + 20 * 1000;
        assert_eq!(b.in_flight_bytes(acked), 10_000);
        assert_eq!(
            b.in_flight_us(acked),
            900_000,
            "frames 20..=29 are on the way"
        );
        // Half of frame 20: it has not arrived yet.
        assert_eq!(b.in_flight_us(acked + 500), 900_000);
        assert_eq!(b.in_flight_us(acked + 1000), 800_000);
        assert_eq!(
            (b.in_flight_bytes(u64::MAX), b.in_flight_us(u64::MAX)),
            (0, 0)
        );
    }

    #[test]
    fn two_estimates_of_what_arrived_can_be_weighed_side_by_side() {
        let b = streamed(64);
        let (server, kernel) = (3073 + 10 * 1000, 3073 + 25 * 1000);
        assert_eq!(b.in_flight_us(kernel), 400_000);
        assert_eq!(b.in_flight_us(server), 1_900_000);
    }

    #[test]
    fn a_full_ring_forgets_the_oldest_frames_and_says_at_least_its_span() {
        let b = streamed(8);
        assert_eq!(b.in_flight_us(0), 700_000, "frames 22..=29 remembered");
        assert_eq!(b.in_flight_bytes(0), 33_073, "bytes are still counted");
    }

    #[test]
    fn recording_a_frame_does_not_grow_the_ring() {
        let mut b = Backlog::with_capacity(16);
        let capacity = b.frames.capacity();
        for i in 0..1000 {
            b.sent(100, Some(i));
        }
        assert_eq!(b.frames.capacity(), capacity);
    }

    #[test]
    fn a_reset_starts_a_new_connection_from_nothing() {
        let mut b = streamed(64);
        b.reset();
        assert_eq!(
            (b.sent_bytes(), b.in_flight_bytes(0), b.in_flight_us(0)),
            (0, 0, 0)
        );
    }

    const W: u32 = 32 * 1024;

    /// A meter after the handshake and `frames` frames of 10 000 bytes, one every 100 ms.
    fn metered(use_acks: bool, frames: u64) -> Meter {
        let mut m = Meter::new(256, W, use_acks);
        m.reset(0);
        m.sent(3073, None);
        for i in 0..frames {
            m.sent(10_000, Some(i * 100_000));
        }
        m
    }

    #[test]
    fn a_server_that_acknowledges_is_believed_within_what_left_the_socket() {
        let mut m = metered(true, 10);
        m.on_kernel_queue(Some(0)); // everything left campush's socket
        assert_eq!(m.update(0), None, "pending until the first acknowledgement");
        assert_eq!(m.in_flight_us(), 0, "pending: the kernel's figure");
        for i in 10..40 {
            m.sent(10_000, Some(i * 100_000));
        }
        m.on_kernel_queue(Some(0));
        // The server acknowledges every 32 KiB, one every 100 ms: the latest says 98304.
        for n in 1..=3 {
            m.on_peer_ack(n * W, n.into(), u64::from(n) * 100_000);
        }
        assert_eq!(m.update(300_000), Some(Estimate::ServerAcks));
        // Arrived: 98304 bytes, that is the handshake and 9 frames: frames 9..=39 on the way.
        assert_eq!(m.oldest_in_flight(), Some(900_000));
        assert_eq!(m.in_flight_us(), 3_000_000);
        // 50 ms later, at the same rate, half a window more: 114688 bytes, 11 frames.
        m.update(350_000);
        assert_eq!(m.in_flight_us(), 2_800_000);
        // Never more than a window more than it acknowledged: 131072 bytes, 12 frames.
        m.update(900_000);
        assert_eq!(m.in_flight_us(), 2_700_000);
        // The kernel still holds the last 30 frames: it bounds what the server can have.
        m.on_kernel_queue(Some(30 * 10_000));
        assert_eq!(m.in_flight_us(), 2_900_000);
        // The link took 32 KiB per 100 ms.
        assert_eq!(m.link_bytes_per_s(), Some(327_680));
    }

    #[test]
    fn acknowledgements_of_a_sender_that_kept_up_say_nothing_of_the_link() {
        let mut m = Meter::new(256, W, true);
        m.reset(0);
        // 10 000 bytes every 100 ms, each acknowledged before the next is sent.
        for i in 0..20u64 {
            m.sent(10_000, Some(i * 100_000));
            let seq = ((i + 1) * 10_000) as u32;
            m.on_peer_ack(seq, i + 1, i * 100_000 + 50_000);
            m.update(i * 100_000 + 50_000);
        }
        assert_eq!(m.estimate(), Estimate::ServerAcks);
        assert_eq!(
            m.link_bytes_per_s(),
            None,
            "campush's pace is not the link's rate"
        );
    }

    #[test]
    fn the_tail_of_a_stream_that_stopped_arrives_in_time_though_never_acknowledged() {
        let mut m = metered(true, 10);
        m.on_kernel_queue(Some(0));
        // Acknowledged up to 98304 of 103073 bytes, at 32 KiB per 100 ms; nothing more comes.
        for n in 1..=3 {
            m.on_peer_ack(n * W, n.into(), u64::from(n) * 100_000);
        }
        m.update(300_000);
        assert_eq!(m.oldest_in_flight(), Some(900_000), "frame 9 is on the way");
        m.update(320_000);
        assert_eq!(
            m.oldest_in_flight(),
            None,
            "4769 bytes take 15 ms at that rate"
        );
    }

    #[test]
    fn a_server_that_never_acknowledges_leaves_the_kernels_figure_and_says_so_once() {
        let mut m = metered(true, 40);
        m.on_kernel_queue(Some(25_000));
        assert_eq!(m.update(NO_ACKS_AFTER_US), None, "give it a second");
        assert_eq!(m.update(NO_ACKS_AFTER_US + 1), Some(Estimate::KernelQueue));
        assert_eq!(m.update(NO_ACKS_AFTER_US + 100_000), None);
        assert_eq!(m.in_flight_us(), 200_000, "frames 37, 38, 39");
        assert_eq!(m.finish(), None, "already said");
    }

    #[test]
    fn a_connection_too_short_to_tell_says_at_its_end_that_no_acknowledgement_came() {
        let mut m = metered(true, 40);
        assert_eq!(m.update(1000), None);
        assert_eq!(m.finish(), Some(Estimate::KernelQueue));
        let mut small = metered(true, 2);
        assert_eq!(small.finish(), None, "under four windows: nothing to tell");
        let mut acked = metered(true, 40);
        acked.on_peer_ack(W, 1, 10);
        acked.update(20);
        assert_eq!(acked.finish(), None);
    }

    #[test]
    fn acknowledgements_turned_off_are_ignored_from_the_start() {
        let mut m = metered(false, 1);
        m.on_peer_ack(3073, 1, 0);
        assert_eq!(m.update(0), Some(Estimate::KernelQueue));
        assert_eq!(m.update(0), None);
    }

    #[test]
    fn acknowledgements_that_stop_while_data_piles_up_give_way_to_the_kernel() {
        let mut m = metered(true, 40);
        m.on_peer_ack(W, 1, 0);
        m.on_kernel_queue(Some(0));
        assert_eq!(m.update(0), Some(Estimate::ServerAcks));
        assert_eq!(m.update(ACKS_STALE_US), None, "not yet stale");
        assert_eq!(m.update(ACKS_STALE_US + 1), Some(Estimate::KernelQueue));
        assert_eq!(m.in_flight_us(), 0);
        // They come back: used again.
        m.on_peer_ack(20 * W, 2, ACKS_STALE_US + 2);
        assert_eq!(m.update(ACKS_STALE_US + 3), Some(Estimate::ServerAcks));
    }

    #[test]
    fn a_new_connection_measures_from_nothing_and_pending_again() {
        let mut m = metered(true, 40);
        m.on_peer_ack(W, 1, 0);
        m.update(0);
        m.reset(5_000_000);
        assert_eq!(m.estimate(), Estimate::Pending);
        assert_eq!((m.in_flight_bytes(), m.in_flight_us()), (0, 0));
    }

    #[test]
    fn acknowledgement_numbers_wrap_past_two_to_the_32() {
        let mut acks = PeerAcks::default();
        let sent = 1 << 40;
        assert_eq!(acks.on_ack(0xFFFF_0000, sent), 0xFFFF_0000);
        assert_eq!(acks.on_ack(0x0001_0000, sent), 0x1_0001_0000);
        assert_eq!(acks.on_ack(0x0002_0000, sent), 0x1_0002_0000);
    }

    #[test]
    fn a_server_that_restarts_its_count_is_never_taken_for_ahead() {
        let mut acks = PeerAcks::default();
        let sent = 0xF001_0000u64;
        // nginx-rtmp: the last acknowledgement before 0xF0000000, then its count restarts.
        assert_eq!(acks.on_ack(0xEFFF_8000, sent), 0xEFFF_8000);
        let after = acks.on_ack(0x8000, sent);
        // The truth is 0xF000_0000 + 0x8000 or a little more: never overestimated.
        assert_eq!(after, 0xEFFF_8000 + 0x8000);
        assert!(after <= 0xF000_8000);
    }

    #[test]
    fn a_server_never_acknowledges_more_than_was_sent() {
        let mut acks = PeerAcks::default();
        assert_eq!(acks.on_ack(5000, 4000), 4000);
    }
}
